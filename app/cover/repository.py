"""Cover queries (tenant-scoped by the session)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date
from decimal import Decimal
from typing import Any

from sqlalchemy import Date, String, and_, bindparam, column, or_, select, text, tuple_
from sqlalchemy.dialects.postgresql import distinct_on
from sqlalchemy.orm import Session

from app.core.db import TENANT_KEY, in_list
from app.cover.models import CountryLimit, FxRate, LimitDecision, Policy, PolicyTerms, StopOfCover


def policy_by_ref(session: Session, ref: str) -> Policy | None:
    return session.scalars(select(Policy).where(Policy.ref == ref)).first()


def policies(session: Session) -> list[Policy]:
    return list(session.scalars(select(Policy).order_by(Policy.ref)))


def policies_page(session: Session, *, after: str | None, limit: int) -> list[Policy]:
    stmt = select(Policy).order_by(Policy.ref).limit(limit)
    if after is not None:
        stmt = stmt.where(Policy.ref > after)
    return list(session.scalars(stmt))


def terms_of(session: Session, policy_ids: Iterable[int] | None = None) -> list[PolicyTerms]:
    """Versions of policies' terms, by policy then effective date (all policies when `policy_ids` is None)."""
    stmt = select(PolicyTerms).order_by(PolicyTerms.policy_id, PolicyTerms.effective_from)
    if policy_ids is not None:
        stmt = stmt.where(PolicyTerms.policy_id.in_(list(policy_ids)))
    return list(session.scalars(stmt))


def stops_of_buyers(session: Session, buyer_ids: Iterable[int]) -> list[StopOfCover]:
    ids = list(buyer_ids)
    if not ids:
        return []
    stmt = select(StopOfCover).where(in_list(StopOfCover.buyer_id, ids)).order_by(
        StopOfCover.buyer_id, StopOfCover.policy_id, StopOfCover.starts_on)
    return list(session.scalars(stmt))


def has_decisions(session: Session, policy_id: int) -> bool:
    return session.scalars(select(LimitDecision.id).where(LimitDecision.policy_id == policy_id).limit(1)).first() \
        is not None


def insurer_decision(session: Session, policy_id: int, buyer_id: int) -> LimitDecision | None:
    """The first insurer decision on a buyer under a policy: it cancels discretionary limits (rule 10)."""
    stmt = select(LimitDecision).where(
        LimitDecision.policy_id == policy_id, LimitDecision.buyer_id == buyer_id, LimitDecision.source == "insurer",
    ).order_by(LimitDecision.effective_from, LimitDecision.id).limit(1)
    return session.scalars(stmt).first()


def decisions_of_buyers(session: Session, buyer_ids: Iterable[int]) -> list[LimitDecision]:
    ids = list(buyer_ids)
    if not ids:
        return []
    stmt = select(LimitDecision).where(in_list(LimitDecision.buyer_id, ids)).order_by(
        LimitDecision.buyer_id, LimitDecision.effective_from, LimitDecision.id
    )
    return list(session.scalars(stmt))


def decision_by_ref(session: Session, policy_id: int, decision_ref: str) -> LimitDecision | None:
    stmt = select(LimitDecision).where(LimitDecision.policy_id == policy_id, LimitDecision.decision_ref == decision_ref)
    return session.scalars(stmt).first()


def country_limits(session: Session) -> list[CountryLimit]:
    return list(session.scalars(select(CountryLimit).order_by(CountryLimit.country)))


def country_limits_page(session: Session, *, after: str | None, limit: int) -> list[CountryLimit]:
    stmt = select(CountryLimit).order_by(CountryLimit.country).limit(limit)
    if after is not None:
        stmt = stmt.where(CountryLimit.country > after)
    return list(session.scalars(stmt))


def country_limit(session: Session, country: str) -> CountryLimit | None:
    return session.scalars(select(CountryLimit).where(CountryLimit.country == country)).first()


def rates_on(session: Session, day: date) -> dict[tuple[str, str], Decimal]:
    """For each currency pair, the latest rate on or before `day`, found through the index
    (tenant_id, base, quote, day) rather than by grouping the whole history.

    PostgreSQL: `DISTINCT ON (base, quote)` in index order. SQLite has no DISTINCT ON: a recursive query walks the
    index from one pair to the next (a skip scan: one probe per pair), then takes each pair's latest row on or
    before `day` with one indexed `ORDER BY day DESC LIMIT 1`."""
    if session.get_bind().dialect.name == "postgresql":
        stmt = (
            select(FxRate.base, FxRate.quote, FxRate.rate)
            .where(FxRate.day <= day)
            .ext(distinct_on(FxRate.base, FxRate.quote))
            .order_by(FxRate.base, FxRate.quote, FxRate.day.desc())
        )
        return {(b, q): Decimal(r) for b, q, r in session.execute(stmt)}
    tenant_id = session.info.get(TENANT_KEY)
    if tenant_id is None:
        raise RuntimeError("rates_on needs a session bound to a tenant")
    raw = text(_SQLITE_LATEST_RATES).bindparams(bindparam("day", type_=Date())).columns(
        column("base", String()), column("quote", String()), column("rate", FxRate.__table__.c.rate.type))
    rows: Any = session.execute(raw, {"tenant": tenant_id, "day": day})
    return {(b, q): Decimal(r) for b, q, r in rows if r is not None}


_SQLITE_LATEST_RATES = """
WITH RECURSIVE pair(id) AS (
    SELECT id FROM (SELECT id FROM fx_rates WHERE tenant_id = :tenant ORDER BY base, quote LIMIT 1)
    UNION ALL
    SELECT (SELECT f.id FROM fx_rates AS f INDEXED BY ix_fx_rates_lookup
            WHERE f.tenant_id = :tenant AND (f.base, f.quote) > (c.base, c.quote)
            ORDER BY f.base, f.quote LIMIT 1)
    FROM pair JOIN fx_rates AS c ON c.id = pair.id
)
SELECT c.base, c.quote,
       (SELECT r.rate FROM fx_rates AS r INDEXED BY ix_fx_rates_lookup
        WHERE r.tenant_id = :tenant AND r.base = c.base AND r.quote = c.quote AND r.day <= :day
        ORDER BY r.day DESC LIMIT 1) AS rate
FROM pair JOIN fx_rates AS c ON c.id = pair.id
"""


def existing_rates(session: Session, keys: list[tuple[str, str, date]]) -> dict[tuple[str, str, date], FxRate]:
    found: dict[tuple[str, str, date], FxRate] = {}
    for start in range(0, len(keys), 500):
        chunk = keys[start : start + 500]
        stmt = select(FxRate).where(tuple_(FxRate.base, FxRate.quote, FxRate.day).in_(chunk))
        found.update({(r.base, r.quote, r.day): r for r in session.scalars(stmt)})
    return found


def rates_page(
    session: Session, *, base: str | None, quote: str | None, on: date | None,
    after: tuple[date, str, str] | None, limit: int,
) -> list[FxRate]:
    """Newest day first, then by pair; `after` is the (day, base, quote) of the previous page's last row."""
    stmt = select(FxRate).order_by(FxRate.day.desc(), FxRate.base, FxRate.quote).limit(limit)
    if after is not None:
        day, after_base, after_quote = after
        stmt = stmt.where(or_(FxRate.day < day, and_(FxRate.day == day, tuple_(FxRate.base, FxRate.quote)
                                                         > tuple_(after_base, after_quote))))
    if base:
        stmt = stmt.where(FxRate.base == base)
    if quote:
        stmt = stmt.where(FxRate.quote == quote)
    if on:
        stmt = stmt.where(FxRate.day <= on)
    return list(session.scalars(stmt))
