"""Every model, imported once so that metadata is complete (Alembic, tests)."""

from app.core.idempotency import IdempotencyRecord
from app.cover.models import CountryLimit, FxRate, LimitDecision, Policy
from app.exposure.models import BuyerExposure
from app.ledger.models import Allocation, Buyer, Invoice, InvoiceRevision, Payment
from app.tenants.models import ApiKey, Tenant

__all__ = [
    "Allocation", "ApiKey", "Buyer", "BuyerExposure", "CountryLimit", "FxRate", "IdempotencyRecord", "Invoice",
    "InvoiceRevision", "LimitDecision", "Payment", "Policy", "Tenant",
]
