"""Every model, imported once so that metadata is complete (Alembic, tests)."""

from app.alerts.models import Alert, Claim, ClaimInvoice
from app.core.idempotency import IdempotencyRecord
from app.cover.models import CountryLimit, FxRate, LimitDecision, Policy
from app.exposure.models import BuyerExposure, ExposureSnapshot, ExposureTotal, Revaluation
from app.ledger.models import Allocation, Buyer, Invoice, InvoiceRevision, Payment
from app.scheduling.models import JobRun
from app.tenants.models import ApiKey, Tenant
from app.webhooks.models import WebhookAttempt, WebhookDelivery, WebhookEndpoint, WebhookEvent

__all__ = [
    "Alert",
    "Allocation",
    "ApiKey",
    "Buyer",
    "BuyerExposure",
    "Claim",
    "ClaimInvoice",
    "CountryLimit",
    "ExposureSnapshot",
    "ExposureTotal",
    "FxRate",
    "IdempotencyRecord",
    "Invoice",
    "InvoiceRevision",
    "JobRun",
    "LimitDecision",
    "Payment",
    "Policy",
    "Revaluation",
    "Tenant",
    "WebhookAttempt",
    "WebhookDelivery",
    "WebhookEndpoint",
    "WebhookEvent",
]
