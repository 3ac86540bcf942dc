"""Import queries (tenant-scoped by the session)."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.cover.models import LimitDecision, Policy
from app.ledger.models import Buyer


def decisions_of(session: Session, pairs: Iterable[tuple[str, str]]) -> dict[tuple[str, str], list[LimitDecision]]:
    """The recorded decisions of these (policy ref, buyer ref) pairs."""
    pairs = set(pairs)
    out: dict[tuple[str, str], list[LimitDecision]] = {p: [] for p in pairs}
    buyer_refs = sorted({b for _, b in pairs})
    for start in range(0, len(buyer_refs), 1000):
        stmt = (
            select(LimitDecision, Policy.ref, Buyer.ref)
            .join(Policy, Policy.id == LimitDecision.policy_id)
            .join(Buyer, Buyer.id == LimitDecision.buyer_id)
            .where(Buyer.ref.in_(buyer_refs[start : start + 1000]))
        )
        for decision, policy_ref, buyer_ref in session.execute(stmt):
            if (policy_ref, buyer_ref) in out:
                out[(policy_ref, buyer_ref)].append(decision)
    return out
