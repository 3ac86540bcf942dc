"""Every model, imported once so that metadata is complete (Alembic, tests)."""

from app.core.idempotency import IdempotencyRecord
from app.ledger.models import Allocation, Buyer, Invoice, InvoiceRevision, Payment
from app.tenants.models import ApiKey, Tenant

__all__ = ["Allocation", "ApiKey", "Buyer", "IdempotencyRecord", "Invoice", "InvoiceRevision", "Payment", "Tenant"]
