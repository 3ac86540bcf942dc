"""CSV import of buyers, invoices, payments and limit decisions: the same validation and service functions as
the JSON API, in batches, idempotent."""
