"""The scrape-time sums, over every tenant (an unbound session)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.alerts.models import Alert
from app.core.types import Money
from app.exposure.models import BuyerExposure
from app.webhooks.models import WebhookDelivery

EXPOSURE_FIELDS = ("outstanding", "covered_primary", "covered_top_up", "uncovered")


def exposure_by_tenant(session: Session) -> list[Any]:  # rows of several columns
    """(tenant id, currency, buyers, outstanding, covered by the primary, by the Top Up, uncovered)."""
    stmt = select(
        BuyerExposure.tenant_id, BuyerExposure.currency, func.count(),
        *[func.sum(getattr(BuyerExposure, f), type_=Money) for f in EXPOSURE_FIELDS],
    ).group_by(BuyerExposure.tenant_id, BuyerExposure.currency)
    return list(session.execute(stmt))


def open_alerts(session: Session) -> list[Any]:  # rows of several columns
    """(tenant id, type, count) of the alerts not resolved."""
    stmt = select(Alert.tenant_id, Alert.type, func.count()).where(Alert.state != "resolved").group_by(
        Alert.tenant_id, Alert.type)
    return list(session.execute(stmt))


def webhook_queue(session: Session) -> int:
    return session.scalar(select(func.count()).select_from(WebhookDelivery).where(
        WebhookDelivery.status == "pending")) or 0
