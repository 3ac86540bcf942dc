"""Report queries. Sessions are tenant-bound (app.core.db). Long reads stream (`yield_per`): memory stays flat.

Per-invoice cover is read in ONE place, `invoice_covers`, from the table of that name.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from datetime import date
from typing import Any

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from app.alerts.models import Alert
from app.core.money import quantize
from app.core.types import Money
from app.cover.models import LimitDecision, Policy
from app.exposure.models import BuyerExposure, ExposureSnapshot, InvoiceCover
from app.ledger.models import Allocation, Buyer, Invoice, Payment

STREAM = 2000


def _stream(session: Session, stmt: Any) -> Any:  # rows of several columns
    """The rows as they come (`partitions()` gives them a chunk at a time)."""
    return session.execute(stmt.execution_options(yield_per=STREAM))


# --- per-invoice cover (the one reader) -------------------------------------------------------------


def cover_dict(values: Mapping[str, Any]) -> dict[str, Any]:
    """One invoice's cover as the reports read it: amounts and dates as strings (as the JSON of the API)."""
    out = {k: values[k] for k in COVER_FIELDS}
    for k in ("open_balance", "covered_primary", "covered_top_up", "uncovered", "indemnifiable",
              "original_open_balance"):
        currency = values["original_currency"] if k == "original_open_balance" else values["currency"]
        out[k] = str(quantize(out[k], currency)) if out[k] is not None else None
    for k in ("issue_date", "due_date", "claim_deadline", "claim_filed_on"):
        out[k] = out[k].isoformat() if out[k] is not None else None
    return out


COVER_FIELDS = ("invoice_ref", "issue_date", "due_date", "currency", "open_balance", "covered_primary",
                "covered_top_up", "uncovered", "indemnifiable", "reason", "claim_deadline", "claim_filed_on",
                "original_currency", "original_open_balance", "primary_policy_ref")


def invoice_covers(session: Session, buyer_ids: Iterable[int] = (),
                   invoice_ids: Iterable[int] = ()) -> dict[int, dict[str, dict[str, Any]]]:
    """The stored per-invoice cover of these buyers (or of these invoices): buyer id -> invoice ref -> cover
    (`cover_dict`, in the buyer's exposure currency), with the buyer row's `valued_on` under each cover."""
    out: dict[int, dict[str, dict[str, Any]]] = {}
    for column, wanted in ((InvoiceCover.buyer_id, sorted(set(buyer_ids))),
                           (InvoiceCover.invoice_id, sorted(set(invoice_ids)))):
        for start in range(0, len(wanted), 1000):
            stmt = (select(InvoiceCover, BuyerExposure.valued_on)
                    .join(BuyerExposure, BuyerExposure.buyer_id == InvoiceCover.buyer_id)
                    .where(column.in_(wanted[start : start + 1000])).order_by(InvoiceCover.buyer_id, InvoiceCover.seq))
            for cover, valued_on in session.execute(stmt):
                values = {k: getattr(cover, k) for k in COVER_FIELDS}
                out.setdefault(cover.buyer_id, {})[cover.invoice_ref] = cover_dict(values) | {"valued_on": valued_on}
    return out


# --- ledger reads -----------------------------------------------------------------------------------


def open_invoices_by_buyer(session: Session, *, country: str | None) -> Any:  # rows of several columns
    """(buyer ref, name, country, currency, open balance, due date) of every open invoice, by buyer."""
    stmt = (
        select(Buyer.ref, Buyer.name, Buyer.country, Invoice.currency, Invoice.open_balance, Invoice.due_date)
        .join(Buyer, Buyer.id == Invoice.buyer_id)
        .where(Invoice.kind == "invoice", Invoice.open_balance > 0)
        .order_by(Buyer.ref, Invoice.currency, Invoice.id)
    )
    if country:
        stmt = stmt.where(Buyer.country == country)
    return _stream(session, stmt)


def overdue_invoices(session: Session, due_before: date) -> Any:  # rows of several columns
    """Open invoices whose original due date is before `due_before`, with their buyer, by buyer."""
    stmt = (
        select(Invoice, Buyer.ref, Buyer.name, Buyer.country)
        .join(Buyer, Buyer.id == Invoice.buyer_id)
        .where(Invoice.kind == "invoice", Invoice.open_balance > 0, Invoice.original_due_date < due_before)
        .order_by(Buyer.ref, Invoice.original_due_date, Invoice.ref)
    )
    return _stream(session, stmt)


def turnover_by_day(session: Session, start: date, end: date) -> list[Any]:  # rows of several columns
    """Invoices and credit notes delivered between `start` and `end`: summed per day, country, currency, kind."""
    stmt = (
        select(Invoice.issue_date, Buyer.country, Invoice.currency, Invoice.kind, func.count(),
               func.sum(Invoice.amount, type_=Money))
        .join(Buyer, Buyer.id == Invoice.buyer_id)
        .where(Invoice.issue_date >= start, Invoice.issue_date <= end)
        .group_by(Invoice.issue_date, Buyer.country, Invoice.currency, Invoice.kind)
        .order_by(Invoice.issue_date)
    )
    return list(session.execute(stmt))


def paid_invoices(session: Session, start: date, end: date) -> Any:  # rows of several columns
    """Invoices paid in full whose last payment was received between `start` and `end`, by buyer:
    (buyer ref, name, country, currency, amount, original due date, paid on)."""
    paid_on = func.max(Payment.received_on)
    stmt = (
        select(Buyer.ref, Buyer.name, Buyer.country, Invoice.currency, Invoice.amount, Invoice.original_due_date,
               paid_on)
        .join(Buyer, Buyer.id == Invoice.buyer_id)
        .join(Allocation, Allocation.invoice_id == Invoice.id)
        .join(Payment, Payment.id == Allocation.payment_id)
        .where(Invoice.kind == "invoice", Invoice.open_balance == 0, Payment.reversed_at.is_(None))
        .group_by(Invoice.id, Buyer.ref, Buyer.name, Buyer.country, Invoice.currency, Invoice.amount,
                  Invoice.original_due_date)
        .having(paid_on >= start, paid_on <= end)
        .order_by(Buyer.ref, Invoice.currency)
    )
    return _stream(session, stmt)


def buyers_in_order(session: Session, *, country: str | None = None) -> Iterator[Buyer]:
    stmt = select(Buyer).order_by(Buyer.ref)
    if country:
        stmt = stmt.where(Buyer.country == country)
    yield from session.scalars(stmt.execution_options(yield_per=STREAM))


def invoices_with_buyer(session: Session) -> Any:  # rows of several columns
    """Every invoice and credit note with its buyer's ref and country, by buyer (plain rows: no ORM objects)."""
    stmt = (
        select(Invoice.id, Invoice.ref, Invoice.buyer_id, Invoice.kind, Invoice.currency, Invoice.amount,
               Invoice.issue_date,
               Invoice.due_date, Invoice.original_due_date, Invoice.applies_to, Invoice.open_balance,
               Invoice.revision, Buyer.ref.label("buyer_ref"), Buyer.country)
        .join(Buyer, Buyer.id == Invoice.buyer_id)
        .order_by(Buyer.ref, Invoice.issue_date, Invoice.ref)
    )
    return _stream(session, stmt)


# --- exposure, snapshots, alerts, decisions -----------------------------------------------------------


def exposure_rows(session: Session) -> Iterator[BuyerExposure]:
    yield from session.scalars(select(BuyerExposure).order_by(BuyerExposure.buyer_ref)
                               .execution_options(yield_per=STREAM))


def snapshot_peaks(session: Session, start: date, end: date) -> list[Any]:  # rows of several columns
    """Per buyer over the snapshots of [start, end]: days, peak outstanding, peak not covered by the primary
    (covered by the Top Up + uncovered), peak uncovered, days with something above the primary; with the
    buyer's current exposure row (name, country, limits in force)."""
    above = ExposureSnapshot.covered_top_up + ExposureSnapshot.uncovered
    stmt = (
        select(
            BuyerExposure.buyer_ref, BuyerExposure.buyer_name, BuyerExposure.country, ExposureSnapshot.currency,
            BuyerExposure.primary_limit, BuyerExposure.top_up_limit, func.count(),
            func.max(ExposureSnapshot.outstanding, type_=Money), func.max(above, type_=Money),
            func.max(ExposureSnapshot.uncovered, type_=Money),
            func.sum(case((above > 0, 1), else_=0)),
        )
        .join(BuyerExposure, BuyerExposure.buyer_id == ExposureSnapshot.buyer_id)
        .where(ExposureSnapshot.day >= start, ExposureSnapshot.day <= end)
        .group_by(BuyerExposure.buyer_ref, BuyerExposure.buyer_name, BuyerExposure.country,
                  ExposureSnapshot.currency, BuyerExposure.primary_limit, BuyerExposure.top_up_limit)
    )
    return list(session.execute(stmt))


def snapshot_days(session: Session, start: date, end: date) -> int:
    stmt = select(func.count(func.distinct(ExposureSnapshot.day))).where(
        ExposureSnapshot.day >= start, ExposureSnapshot.day <= end)
    return session.scalar(stmt) or 0


def alerts_in_order(session: Session) -> Iterator[Alert]:
    yield from session.scalars(select(Alert).order_by(Alert.id).execution_options(yield_per=STREAM))


def decisions_in_order(session: Session) -> Any:  # rows of several columns
    stmt = (
        select(LimitDecision, Policy.ref, Policy.currency, Buyer.ref)
        .join(Policy, Policy.id == LimitDecision.policy_id)
        .join(Buyer, Buyer.id == LimitDecision.buyer_id)
        .order_by(Buyer.ref, Policy.ref, LimitDecision.effective_from, LimitDecision.id)
    )
    return _stream(session, stmt)


def policies(session: Session) -> list[Policy]:
    return list(session.scalars(select(Policy).order_by(Policy.ref)))
