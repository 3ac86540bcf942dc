"""Exposure queries over the stored rows (tenant-scoped by the session)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date
from decimal import ROUND_CEILING, Decimal
from typing import Any

from sqlalchemy import and_, delete, func, or_, select, text, true
from sqlalchemy.orm import Session

from app.alerts.models import ClaimInvoice
from app.core.db import BUYER_DAYS, buyer_days, in_list, json_pairs, per_buyer_from_day, postgresql
from app.core.types import Ratio
from app.exposure.models import BuyerExposure, ExposureTotal, InvoiceCover
from app.ledger.models import Invoice

SORTABLE = (
    "buyer_ref", "outstanding", "not_due", "overdue_1_30", "overdue_31_60", "overdue_61_90", "overdue_over_90",
    "covered_primary", "covered_top_up", "uncovered", "indemnifiable", "primary_limit", "top_up_limit",
    "utilisation",
)
SUMMED = ("outstanding", "not_due", "overdue_1_30", "overdue_31_60", "overdue_61_90", "overdue_over_90",
          "covered_primary", "covered_top_up", "uncovered", "indemnifiable")


def rows_by_buyer(session: Session, buyer_ids: Iterable[int]) -> dict[int, BuyerExposure]:
    """The stored rows as objects, as the database has them now (rows are written in bulk, bypassing objects
    a session may already hold)."""
    ids = list(buyer_ids)
    if not ids:
        return {}
    stmt = select(BuyerExposure).where(in_list(BuyerExposure.buyer_id, ids)).execution_options(populate_existing=True)
    return {r.buyer_id: r for r in session.scalars(stmt)}


def stored_keys(session: Session, buyer_ids: Iterable[int]) -> dict[int, Any]:
    """For each buyer with a stored row, what a refresh compares and subtracts from the totals: the row's id,
    country, currency, status, errors and amounts, as plain values (rows are rewritten in bulk, never loaded as
    objects)."""
    ids = list(buyer_ids)
    if not ids:
        return {}
    stmt = select(BuyerExposure.buyer_id, BuyerExposure.id, BuyerExposure.country, BuyerExposure.currency,
                  BuyerExposure.status, BuyerExposure.errors, BuyerExposure.valued_on, BuyerExposure.stale,
                  BuyerExposure.detail, *[getattr(BuyerExposure, f) for f in SUMMED]).where(
        in_list(BuyerExposure.buyer_id, ids))
    return {row.buyer_id: row for row in session.execute(stmt)}


def claimed_invoices(session: Session, buyer_ids: list[int]) -> dict[int, date]:
    """The buyers' invoices declared in a claim, with the filing date (a claim filed by the deadline keeps the
    cover): one query by buyer, whatever the number of open invoices."""
    stmt = (select(ClaimInvoice.invoice_id, ClaimInvoice.filed_on)
            .join(Invoice, Invoice.id == ClaimInvoice.invoice_id).where(in_list(Invoice.buyer_id, buyer_ids)))
    return {i: d for i, d in session.execute(stmt)}


def claims_of_invoices(session: Session, invoice_ids: list[int]) -> dict[int, date]:
    """These invoices' claim filing dates, if declared in a claim."""
    if not invoice_ids:
        return {}
    stmt = select(ClaimInvoice.invoice_id, ClaimInvoice.filed_on).where(in_list(ClaimInvoice.invoice_id, invoice_ids))
    return {i: d for i, d in session.execute(stmt)}


# --- invoice covers: the buyers' walks ------------------------------------------------------------------------


# The per-buyer lookups of a walk: one LATERAL statement on PostgreSQL, index range scans elsewhere (app.core.db).
_PG_PREFIXES = text(f"""
SELECT v.buyer_id, c.seq, c.state FROM {BUYER_DAYS}
CROSS JOIN LATERAL (
    SELECT c.seq, c.state FROM invoice_covers c
    WHERE c.tenant_id = :tenant AND c.buyer_id = v.buyer_id AND c.issue_date < COALESCE(v.day, 'infinity'::date)
    ORDER BY c.issue_date DESC, c.seq DESC LIMIT 1) c""")
# SQLite: one probe of ix_invoice_covers_walk per (buyer, day) pair. Written as `id IN (one scalar subquery per
# buyer)`, SQLite took 15 ms a buyer at 1,000,000 covers (a batch of 5,000 invoices over 4,000 buyers: 60 s).
_SQLITE_PREFIXES = text("""
SELECT c.buyer_id, c.seq, c.state FROM json_each(:pairs) AS v
JOIN invoice_covers c ON c.id = (
    SELECT p.id FROM invoice_covers p
    WHERE p.tenant_id = :tenant AND p.buyer_id = v.value ->> 0
        AND p.issue_date < COALESCE(v.value ->> 1, '9999-12-31')
    ORDER BY p.issue_date DESC, p.seq DESC LIMIT 1)""").columns(
    InvoiceCover.buyer_id, InvoiceCover.seq, InvoiceCover.state)
# A walk's stored covers from a day on: all of each row (a re-walk compares its rows with them).
TAIL_COLUMNS = ("id", "buyer_id", "seq", "invoice_id", "invoice_ref", "issue_date", "due_date", "currency",
                "open_balance", "covered_primary", "covered_top_up", "uncovered", "indemnifiable", "reason",
                "claim_deadline", "claim_filed_on", "original_currency", "original_open_balance", "primary_policy_ref",
                "state")
_PG_TAILS = text(f"""
SELECT {", ".join("v.buyer_id" if k == "buyer_id" else "c." + k for k in TAIL_COLUMNS)}
FROM {BUYER_DAYS}
CROSS JOIN LATERAL (
    SELECT c.* FROM invoice_covers c WHERE c.tenant_id = :tenant AND c.buyer_id = v.buyer_id AND c.issue_date >= v.day
    OFFSET 0) c""").columns(*[InvoiceCover.__table__.c[k] for k in TAIL_COLUMNS])


def walk_prefixes(session: Session, before: dict[int, date | None]) -> dict[int, Any]:
    """For each buyer, the (seq, state) of its last invoice cover delivered before the day given (None: its last
    of all): one index lookup per buyer, all in one statement."""
    if not before:
        return {}
    if postgresql(session):
        return {row.buyer_id: row for row in session.execute(_PG_PREFIXES, buyer_days(session, before))}
    return {row.buyer_id: row for row in session.execute(_SQLITE_PREFIXES, json_pairs(session, before.items()))}


def walk_tails(session: Session, since: dict[int, date]) -> dict[int, list[Any]]:
    """For each buyer, its stored invoice covers delivered from the day given (`TAIL_COLUMNS`; index range scans)."""
    out: dict[int, list[Any]] = {}
    if not since:
        return out
    if postgresql(session):
        parts: Iterable[Any] = [session.execute(_PG_TAILS, buyer_days(session, since))]
    else:
        stmt = select(*[getattr(InvoiceCover, k) for k in TAIL_COLUMNS])
        parts = (session.execute(part)
                 for part in per_buyer_from_day(stmt, InvoiceCover.buyer_id, InvoiceCover.issue_date, since))
    for rows in parts:
        for row in rows:
            out.setdefault(row.buyer_id, []).append(row)
    return out


def delete_covers(session: Session, ids: list[int]) -> None:
    if ids:
        session.execute(delete(InvoiceCover).where(in_list(InvoiceCover.id, ids))
                        .execution_options(synchronize_session=False))


def cover_rows(session: Session, buyer_ids: list[int], keys: Iterable[str]) -> dict[int, list[tuple[Any, ...]]]:
    """Each buyer's stored invoice covers in walk order, as tuples (row id, *the keys' values): plain rows."""
    if not buyer_ids:
        return {}
    stmt = select(InvoiceCover.buyer_id, InvoiceCover.id, *[getattr(InvoiceCover, k) for k in keys]).where(
        in_list(InvoiceCover.buyer_id, buyer_ids)).order_by(InvoiceCover.buyer_id, InvoiceCover.seq)
    out: dict[int, list[tuple[Any, ...]]] = {}
    for row in session.execute(stmt):
        out.setdefault(row[0], []).append(tuple(row[1:]))
    return out


def covers_page(session: Session, buyer_id: int, *, after: tuple[date, str] | None, limit: int) -> list[InvoiceCover]:
    """A buyer's invoice covers in walk order after (delivery date, reference)."""
    stmt = select(InvoiceCover).where(InvoiceCover.buyer_id == buyer_id)
    if after is not None:
        day, ref = after
        stmt = stmt.where(or_(InvoiceCover.issue_date > day,
                              and_(InvoiceCover.issue_date == day, InvoiceCover.invoice_ref > ref)))
    return list(session.scalars(stmt.order_by(InvoiceCover.issue_date, InvoiceCover.seq).limit(limit)))


def cover_count(session: Session, buyer_id: int) -> int:
    return session.scalar(select(func.count()).select_from(InvoiceCover).where(InvoiceCover.buyer_id == buyer_id)) or 0


def row_by_ref(session: Session, buyer_ref: str) -> BuyerExposure | None:
    stmt = select(BuyerExposure).where(BuyerExposure.buyer_ref == buyer_ref).execution_options(populate_existing=True)
    return session.scalars(stmt).first()


def _sort_column(name: str) -> Any:
    column = getattr(BuyerExposure, name)
    if name == "utilisation":
        return func.coalesce(column, Decimal(-1), type_=Ratio)
    return column


def buyers_page(
    session: Session, *, country: str | None, status: str | None, min_uncovered: Decimal | None,
    sort: str, descending: bool, after: tuple[Any, str] | None, limit: int,
) -> list[BuyerExposure]:
    col = _sort_column(sort)
    stmt = select(BuyerExposure)
    if country:
        stmt = stmt.where(BuyerExposure.country == country)
    if status:
        stmt = stmt.where(BuyerExposure.status == status)
    if min_uncovered is not None:
        # Stored amounts have 4 decimals: "at least 0.00001" is "at least 0.0001" (and binds on SQLite).
        stmt = stmt.where(BuyerExposure.uncovered >= min_uncovered.quantize(Decimal("0.0001"), ROUND_CEILING))
    if sort == "buyer_ref":
        if after is not None:
            stmt = stmt.where(BuyerExposure.buyer_ref < after[1] if descending else BuyerExposure.buyer_ref > after[1])
        order = [BuyerExposure.buyer_ref.desc() if descending else BuyerExposure.buyer_ref]
    else:
        if after is not None:
            value, ref = after
            if descending:
                stmt = stmt.where(or_(col < value, and_(col == value, BuyerExposure.buyer_ref < ref)))
            else:
                stmt = stmt.where(or_(col > value, and_(col == value, BuyerExposure.buyer_ref > ref)))
        order = [col.desc(), BuyerExposure.buyer_ref.desc()] if descending else [col, BuyerExposure.buyer_ref]
    return list(session.scalars(stmt.order_by(*order).limit(limit)))


def totals_by_currency_and_status(session: Session) -> list[tuple[str, str, int, dict[str, Decimal]]]:
    """From the totals kept by delta (a handful of rows), never from the buyer rows."""
    stmt = select(
        ExposureTotal.currency, ExposureTotal.status, func.sum(ExposureTotal.buyers),
        *[func.sum(getattr(ExposureTotal, f)) for f in SUMMED],
    ).group_by(ExposureTotal.currency, ExposureTotal.status).having(func.sum(ExposureTotal.buyers) > 0)
    return [(row[0], row[1], int(row[2]), {f: Decimal(v) for f, v in zip(SUMMED, row[3:], strict=True)})
            for row in session.execute(stmt)]


def totals_by_country(
    session: Session, only: set[str] | None = None
) -> list[tuple[str, str, int, dict[str, Decimal]]]:
    stmt = select(
        ExposureTotal.country, ExposureTotal.currency, func.sum(ExposureTotal.buyers),
        *[func.sum(getattr(ExposureTotal, f)) for f in SUMMED],
    ).group_by(ExposureTotal.country, ExposureTotal.currency).having(func.sum(ExposureTotal.buyers) > 0)
    if only is not None:
        stmt = stmt.where(ExposureTotal.country.in_(sorted(only)))
    return [(row[0], row[1], int(row[2]), {f: Decimal(v) for f, v in zip(SUMMED, row[3:], strict=True)})
            for row in session.execute(stmt)]


def last_valued_on(session: Session) -> Any:
    return session.scalar(select(func.max(BuyerExposure.valued_on)))


def stale_buyers(session: Session, after: int = 0) -> int:
    """Rows awaiting a background revaluation (of buyers after this id), counted on the partial index of them."""
    return session.scalar(select(func.count()).select_from(BuyerExposure)
                          .where(BuyerExposure.stale == true(), BuyerExposure.buyer_id > after)) or 0


def missing_rates(session: Session) -> dict[str, int]:
    """Missing FX rate pairs ("USD/EUR") the stored rows need, with how many buyers each one leaves unknown."""
    counts: dict[str, int] = {}
    details: list[dict[str, Any]] = list(
        session.scalars(select(BuyerExposure.detail).where(BuyerExposure.error_count > 0)))
    for detail in details:
        for pair in detail.get("missing_rates", []):
            counts[pair] = counts.get(pair, 0) + 1
    return counts


def errors_by_country(session: Session, only: set[str] | None) -> list[tuple[str, list[str]]]:
    stmt = select(BuyerExposure.country, BuyerExposure.errors).where(BuyerExposure.error_count > 0)
    if only is not None:
        stmt = stmt.where(BuyerExposure.country.in_(sorted(only)))
    return [(c, e) for c, e in session.execute(stmt)]


def errors_present(session: Session) -> list[list[str]]:
    """The error lists of the rows that have any (a missing FX rate, say)."""
    return list(session.scalars(select(BuyerExposure.errors).where(BuyerExposure.error_count > 0)))
