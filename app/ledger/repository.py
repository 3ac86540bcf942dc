"""Ledger queries. Sessions are tenant-bound (app.core.db): no query filters by tenant by hand."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import date
from decimal import Decimal
from typing import Any, get_args

from sqlalchemy import Select, and_, exists, func, or_, select, text
from sqlalchemy.orm import Session, aliased

from app.core.db import BUYER_DAYS, bound_tenant, buyer_days, in_list, per_buyer_from_day, postgresql
from app.ledger.models import Allocation, Buyer, Invoice, InvoiceRevision, Payment
from app.ledger.schemas import InvoiceKind


def buyer_by_ref(session: Session, ref: str, *, for_update: bool = False) -> Buyer | None:
    stmt = select(Buyer).where(Buyer.ref == ref)
    return session.scalars(stmt.with_for_update() if for_update else stmt).first()


def buyers_by_refs(session: Session, refs: Iterable[str], *, for_update: bool = False) -> dict[str, Buyer]:
    """Buyers by ERP reference. `for_update` locks them (in id order, so concurrent writers never deadlock):
    every write to a buyer's ledger or cover holds its buyer row until commit."""
    refs = list(set(refs))
    if not refs:
        return {}
    stmt = select(Buyer).where(in_list(Buyer.ref, refs)).order_by(Buyer.id)
    return {b.ref: b for b in session.scalars(stmt.with_for_update() if for_update else stmt)}


def lock_buyers(session: Session, buyer_ids: Iterable[int], refs: Iterable[str] = ()) -> list[Buyer]:
    """Lock these buyers (by id, and by ref) in one statement, in id order: the one lock order everywhere."""
    ids, refs = sorted(set(buyer_ids)), sorted(set(refs))
    if not ids and not refs:
        return []
    which = or_(in_list(Buyer.id, ids), in_list(Buyer.ref, refs)) if refs else in_list(Buyer.id, ids)
    return list(session.scalars(select(Buyer).where(which).order_by(Buyer.id).with_for_update()))


def buyers_page(session: Session, *, country: str | None, after: str | None, limit: int) -> list[Buyer]:
    stmt = select(Buyer).order_by(Buyer.ref).limit(limit)
    if country:
        stmt = stmt.where(Buyer.country == country)
    if after is not None:
        stmt = stmt.where(Buyer.ref > after)
    return list(session.scalars(stmt))


# Both kinds named, so that the unique index (tenant_id, kind, ref) is searched by ref: without a condition on
# kind, PostgreSQL read the tenant's whole index for each lookup (319 ms at 1,000,000 invoices, 0.16 ms with it).
KINDS = list(get_args(InvoiceKind))


def documents_by_ref(session: Session, ref: str, kind: str | None = None) -> list[Invoice]:
    """The invoice and the credit note numbered `ref` (each kind has its own numbering), or the one of `kind`."""
    stmt = select(Invoice).where(Invoice.kind.in_([kind] if kind is not None else KINDS), Invoice.ref == ref)
    return list(session.scalars(stmt.order_by(Invoice.kind.desc())))


def documents_by_refs(session: Session, refs: Iterable[str]) -> dict[tuple[str, str], Invoice]:
    """Invoices and credit notes numbered `refs`, by (kind, ref)."""
    ids = [row.id for row in document_rows(session, refs)]
    return {(i.kind, i.ref): i for i in invoices_by_ids(session, ids)}


def invoices_by_ids(session: Session, ids: Iterable[int]) -> list[Invoice]:
    ids = sorted(set(ids))
    return list(session.scalars(select(Invoice).where(in_list(Invoice.id, ids)))) if ids else []


DOCUMENT_COLUMNS = (Invoice.ref, Invoice.buyer_id, Invoice.kind, Invoice.currency, Invoice.amount, Invoice.issue_date,
                    Invoice.due_date, Invoice.original_due_date, Invoice.applies_to, Invoice.id)


# Each reference looked up on the unique index (tenant_id, kind, ref), one probe per reference and kind, every
# column of the index equal to a value: PostgreSQL knows each probe finds one row at most, statistics or not, and
# `OFFSET 0` keeps the subquery a nested loop. Written as `kind IN (...) AND ref = ANY(:refs)`, the lookup of a
# batch's 5,000 references was a parallel scan of the tenant's invoices once the table had statistics (125-145 ms
# at 1,000,000 invoices, three processes' CPU) and, with `kind IN` in the probe, a scan of the tenant's part of
# the index per reference before it had any (3.2 s at 20,000 invoices); this way 13-16 ms at any size.
_PG_DOCUMENTS = text(f"""
SELECT i.ref, i.buyer_id, i.kind, i.currency, i.amount, i.issue_date, i.due_date, i.original_due_date, i.applies_to,
    i.id
FROM unnest(CAST(string_to_array(:refs, chr(10)) AS varchar[])) AS r(ref)
CROSS JOIN (VALUES {", ".join(f"('{k}')" for k in KINDS)}) AS k(kind)
CROSS JOIN LATERAL (
    SELECT i.ref, i.buyer_id, i.kind, i.currency, i.amount, i.issue_date, i.due_date, i.original_due_date,
        i.applies_to, i.id FROM invoices i
    WHERE i.tenant_id = :tenant AND i.kind = k.kind AND i.ref = r.ref OFFSET 0) i""")


def document_rows(session: Session, refs: Iterable[str]) -> list[Any]:
    """What a batch checks of the invoices and credit notes numbered `refs` (DOCUMENT_COLUMNS), as plain rows."""
    refs = list(set(refs))
    if not refs:
        return []
    if postgresql(session):
        # One text parameter, the references a line each (no reference holds a control character): no statement
        # with thousands of bound values to build and parse, nor a list of them for the driver to quote one by one
        # (psycopg's list dumper was 0.8 s of a 1,000,000-row import).
        return list(session.execute(_PG_DOCUMENTS, {"tenant": bound_tenant(session), "refs": "\n".join(refs)}))
    return list(session.execute(select(*DOCUMENT_COLUMNS).where(Invoice.kind.in_(KINDS), in_list(Invoice.ref, refs))))


def invoices_by_refs(session: Session, refs: Iterable[str]) -> dict[str, Invoice]:
    """Invoices (not credit notes) numbered `refs`, by ref."""
    return {ref: doc for (kind, ref), doc in documents_by_refs(session, refs).items() if kind == "invoice"}


def _paid_by_payment() -> Any:
    """Some payment (not only credit notes) went to the invoice."""
    return exists().where(and_(Allocation.invoice_id == Invoice.id, Allocation.payment_id.is_not(None)))


def invoices_page(
    session: Session,
    *,
    buyer_id: int | None,
    kind: str | None,
    status: str | None,
    overdue_on: date | None,
    due_before: date | None,
    due_after: date | None,
    after: tuple[str, str] | None,
    limit: int,
) -> list[tuple[Invoice, str]]:
    stmt: Select[Invoice, str] = (
        select(Invoice, Buyer.ref)
        .join(Buyer, Buyer.id == Invoice.buyer_id)
        .order_by(Invoice.ref, Invoice.kind)
        .limit(limit)
    )
    if buyer_id is not None:
        stmt = stmt.where(Invoice.buyer_id == buyer_id)
    if kind is not None:
        stmt = stmt.where(Invoice.kind == kind)
    if status == "open":
        stmt = stmt.where(Invoice.open_balance == Invoice.amount)
    elif status == "partially_paid":
        stmt = stmt.where(Invoice.open_balance > 0, Invoice.open_balance < Invoice.amount)
    elif status == "paid":
        stmt = stmt.where(Invoice.kind == "invoice", Invoice.open_balance == 0, _paid_by_payment())
    elif status == "credited":
        stmt = stmt.where(Invoice.open_balance == 0, or_(Invoice.kind == "credit_note", ~_paid_by_payment()))
    if overdue_on is not None:
        stmt = stmt.where(Invoice.kind == "invoice", Invoice.open_balance > 0, Invoice.due_date < overdue_on)
    if due_before is not None:
        stmt = stmt.where(Invoice.due_date < due_before)
    if due_after is not None:
        stmt = stmt.where(Invoice.due_date > due_after)
    if after is not None:
        stmt = stmt.where(or_(Invoice.ref > after[0], and_(Invoice.ref == after[0], Invoice.kind > after[1])))
    return [(row[0], row[1]) for row in session.execute(stmt)]


def paid_invoice_ids(session: Session, invoice_ids: Iterable[int]) -> set[int]:
    ids = list(invoice_ids)
    if not ids:
        return set()
    stmt = select(Allocation.invoice_id).where(in_list(Allocation.invoice_id, ids), Allocation.payment_id.is_not(None))
    return set(session.scalars(stmt))


def allocations_of_invoice(session: Session, invoice_id: int) -> list[Allocation]:
    return allocations_of_invoices(session, [invoice_id])[invoice_id]


def allocations_of_invoices(session: Session, invoice_ids: Iterable[int]) -> dict[int, list[Allocation]]:
    """What was applied to each of these invoices, or taken from each of these credit notes (an allocation of a
    credit note to an invoice is listed under both), oldest first, in one query."""
    ids = sorted(set(invoice_ids))
    found: dict[int, list[Allocation]] = {i: [] for i in ids}
    if not ids:
        return found
    stmt = select(Allocation).where(or_(in_list(Allocation.invoice_id, ids), in_list(Allocation.credit_note_id, ids)))
    for a in session.scalars(stmt.order_by(Allocation.id)):
        for owner in (a.invoice_id, a.credit_note_id):
            if owner is not None and owner in found:
                found[owner].append(a)
    return found


def allocations_of_payment(session: Session, payment_id: int) -> list[Allocation]:
    return list(session.scalars(select(Allocation).where(Allocation.payment_id == payment_id).order_by(Allocation.id)))


def unapplied_credit_notes(session: Session, buyer_ids: Iterable[int]) -> list[Invoice]:
    stmt = (
        select(Invoice)
        .where(in_list(Invoice.buyer_id, buyer_ids), Invoice.kind == "credit_note", Invoice.open_balance > 0)
        .order_by(Invoice.issue_date, Invoice.ref)
    )
    return list(session.scalars(stmt))


def unapplied_payments(session: Session, buyer_ids: Iterable[int]) -> list[Payment]:
    stmt = (
        select(Payment)
        .where(in_list(Payment.buyer_id, buyer_ids), Payment.reversed_at.is_(None), Payment.unapplied > 0)
        .order_by(Payment.received_on, Payment.ref)
    )
    return list(session.scalars(stmt))


def open_invoices(session: Session, buyer_ids: Iterable[int], needed: Mapping[tuple[int, str], Decimal],
                  known: Mapping[int, Decimal] | None = None) -> list[Invoice]:
    """Open invoices, oldest due date first (the insurers' order for applying cash): of each buyer and currency,
    as many as it takes to absorb `needed` of it (all of them when they do not), for cash applied in that order
    never reaches further. Chosen on plain rows first: a buyer with 20,000 open invoices paying its oldest few
    hundred builds a few hundred objects, not 20,000. `known`: balances by invoice id that the session holds and
    the database does not have yet (app.ledger.allocation.flush)."""
    known = known or {}
    order = (Invoice.due_date, Invoice.issue_date, Invoice.ref)
    rows = session.execute(
        select(Invoice.id, Invoice.buyer_id, Invoice.currency, Invoice.open_balance)
        .where(in_list(Invoice.buyer_id, buyer_ids), Invoice.kind == "invoice", Invoice.open_balance > 0)
        .order_by(*order)
    )
    taken: dict[tuple[int, str], Decimal] = {}
    ids = []
    for id_, buyer_id, currency, balance in rows:
        key = (buyer_id, currency)
        so_far = taken.get(key, Decimal(0))
        if so_far < needed.get(key, Decimal(0)):
            ids.append(id_)
            taken[key] = so_far + known.get(id_, balance)
    if not ids:
        return []
    return list(session.scalars(select(Invoice).where(in_list(Invoice.id, ids)).order_by(*order)))


def open_items(session: Session, buyer_ids: Iterable[int]) -> list[Any]:
    """What the cover engine needs of the open invoices, as plain rows (no ORM objects to build and track)."""
    stmt = select(
        Invoice.id, Invoice.buyer_id, Invoice.ref, Invoice.currency, Invoice.open_balance, Invoice.issue_date,
        Invoice.due_date, Invoice.original_due_date,
    ).where(in_list(Invoice.buyer_id, buyer_ids), Invoice.kind == "invoice", Invoice.open_balance > 0)
    return list(session.execute(stmt))


def open_counts(session: Session, buyer_ids: Iterable[int]) -> dict[int, int]:
    """How many open invoices each buyer has (buyers with none are left out), on the partial index of them."""
    stmt = (select(Invoice.buyer_id, func.count())
            .where(in_list(Invoice.buyer_id, buyer_ids), Invoice.kind == "invoice", Invoice.open_balance > 0)
            .group_by(Invoice.buyer_id))
    return {row[0]: row[1] for row in session.execute(stmt)}


_PG_OPEN_FROM = text(f"""
SELECT i.id, v.buyer_id, i.ref, i.currency, i.open_balance, i.issue_date, i.due_date, i.original_due_date
FROM {BUYER_DAYS}
CROSS JOIN LATERAL (
    SELECT i.id, i.ref, i.currency, i.open_balance, i.issue_date, i.due_date, i.original_due_date FROM invoices i
    WHERE i.tenant_id = :tenant AND i.buyer_id = v.buyer_id AND i.issue_date >= v.day
        AND i.kind = 'invoice' AND i.open_balance > 0 OFFSET 0) i""")


def open_items_from(session: Session, since: dict[int, date]) -> list[Any]:
    """`open_items` of each buyer delivered on or after the day given (an index range scan per buyer)."""
    if not since:
        return []
    if postgresql(session):  # one statement of constant text (app.core.db)
        return list(session.execute(_PG_OPEN_FROM, buyer_days(session, since)))
    # The open-invoice condition written as the partial index's (SQLite uses it only for the very same terms).
    stmt = select(
        Invoice.id, Invoice.buyer_id, Invoice.ref, Invoice.currency, Invoice.open_balance, Invoice.issue_date,
        Invoice.due_date, Invoice.original_due_date,
    ).where(text("invoices.kind = 'invoice' AND invoices.open_balance > 0"))
    return [row for part in per_buyer_from_day(stmt, Invoice.buyer_id, Invoice.issue_date, since)
            for row in session.execute(part)]


def settlement_dates(session: Session, invoice_ids: list[int]) -> dict[int, date]:
    """The latest date among the payments (received on) and credit notes (issued on) applied to each invoice."""
    note = aliased(Invoice)
    if not invoice_ids:
        return {}
    stmt = (
        select(Allocation.invoice_id, func.max(func.coalesce(Payment.received_on, note.issue_date)))
        .outerjoin(Payment, Payment.id == Allocation.payment_id)
        .outerjoin(note, note.id == Allocation.credit_note_id)
        .where(in_list(Allocation.invoice_id, invoice_ids))
        .group_by(Allocation.invoice_id)
    )
    return {i: d for i, d in session.execute(stmt) if d is not None}


def stop_history(session: Session, buyer_ids: Iterable[int], *, due_before: date | None = None) -> list[Any]:
    """The invoices that can have stopped cover (DOMAIN.md rule 7), as plain rows: the open ones, and the ones
    settled after their original due date (settled on time, an invoice never passed its maximum extension
    unpaid); with `due_before`, only those originally due before it (no extension can have passed for others)."""
    stmt = select(
        Invoice.buyer_id, Invoice.ref, Invoice.issue_date, Invoice.original_due_date, Invoice.settled_on
    ).where(
        in_list(Invoice.buyer_id, buyer_ids), Invoice.kind == "invoice",
        or_(Invoice.settled_on.is_(None), Invoice.settled_on > Invoice.original_due_date),
    )
    if due_before is not None:
        stmt = stmt.where(Invoice.original_due_date < due_before)
    return list(session.execute(stmt))


def revisions_of_invoice(session: Session, invoice_id: int) -> list[InvoiceRevision]:
    stmt = select(InvoiceRevision).where(InvoiceRevision.invoice_id == invoice_id).order_by(InvoiceRevision.revision)
    return list(session.scalars(stmt))


def payment_by_ref(session: Session, ref: str) -> Payment | None:
    return session.scalars(select(Payment).where(Payment.ref == ref)).first()


def payments_by_refs(session: Session, refs: Iterable[str], *, fresh: bool = False) -> dict[str, Payment]:
    """Payments by reference; `fresh` re-reads rows the session already holds (after taking locks)."""
    refs = list(set(refs))
    if not refs:
        return {}
    stmt = select(Payment).where(in_list(Payment.ref, refs))
    if fresh:
        stmt = stmt.execution_options(populate_existing=True)
    return {p.ref: p for p in session.scalars(stmt)}


def buyer_balances(session: Session, buyer_id: int) -> dict[str, dict[str, Decimal]]:
    """Per currency: invoices, credit notes, payments, open invoices and unapplied credit, summed by the database."""
    out: dict[str, dict[str, Decimal]] = {}

    def slot(currency: str) -> dict[str, Decimal]:
        return out.setdefault(
            currency,
            {k: Decimal(0) for k in ("invoices", "credit_notes", "payments", "open", "unapplied")},
        )

    inv = select(
        Invoice.currency,
        Invoice.kind,
        func.coalesce(func.sum(Invoice.amount), 0),
        func.coalesce(func.sum(Invoice.open_balance), 0),
    ).where(Invoice.buyer_id == buyer_id).group_by(Invoice.currency, Invoice.kind)
    for currency, kind, amount, open_ in session.execute(inv):
        s = slot(currency)
        if kind == "invoice":
            s["invoices"] += Decimal(amount)
            s["open"] += Decimal(open_)
        else:
            s["credit_notes"] += Decimal(amount)
            s["unapplied"] += Decimal(open_)
    pay = select(
        Payment.currency, func.coalesce(func.sum(Payment.amount), 0), func.coalesce(func.sum(Payment.unapplied), 0)
    ).where(Payment.buyer_id == buyer_id, Payment.reversed_at.is_(None)).group_by(Payment.currency)
    for currency, amount, unapplied in session.execute(pay):
        s = slot(currency)
        s["payments"] += Decimal(amount)
        s["unapplied"] += Decimal(unapplied)
    return out
