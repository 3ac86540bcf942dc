"""E-invoice ingest: UBL 2.1 (Peppol BIS Billing 3.0), UN/CEFACT CII and Factur-X PDFs, into the ledger."""
