"""E-invoice queries. Sessions are tenant-bound (app.core.db): no query filters by tenant by hand."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from app.ledger.models import Buyer, Invoice


def buyers_with_any_identifier(session: Session, values: Iterable[str]) -> list[Buyer]:
    """Buyers whose ERP reference, registration id or insurer buyer id is one of `values`."""
    wanted = sorted(set(values))
    if not wanted:
        return []
    stmt = select(Buyer).where(
        or_(Buyer.ref.in_(wanted), Buyer.registration_id.in_(wanted), Buyer.insurer_buyer_id.in_(wanted))
    ).order_by(Buyer.id)
    return list(session.scalars(stmt))


def invoice_of_buyer(session: Session, ref: str, buyer_id: int) -> Invoice | None:
    stmt = select(Invoice).where(Invoice.ref == ref, Invoice.kind == "invoice", Invoice.buyer_id == buyer_id)
    return session.scalars(stmt).first()
