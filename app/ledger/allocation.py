"""Applying credit notes and payments to invoices, and taking them back.

The insurers' rule: what the ERP did not allocate is applied to the buyer's
open invoices, oldest due date first. A credit note goes to the invoice it
names first. Credit not yet applicable (no open invoice in its currency) stays
unapplied and is applied as soon as an invoice opens.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from decimal import Decimal
from typing import Any

from sqlalchemy import event, inspect
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from app.core.clock import utcnow
from app.core.db import UPDATE_FROM_ROWS, bound_tenant, insert_rows, update_rows
from app.exposure import changes
from app.ledger import repository as repo
from app.ledger.models import Allocation, Invoice, Payment

_TOUCHED = "settlement_touched"


def touch(session: Session, invoice: Invoice) -> None:
    """Note that this invoice's balance moved: `stamp` dates its settlement before the transaction ends, and the
    buyer's cover is re-walked from its delivery date (app.exposure.changes)."""
    session.info.setdefault(_TOUCHED, set()).add(invoice)
    changes.note(session, invoice.buyer_id, invoice.issue_date, invoice.original_due_date)


def stamp(session: Session) -> None:
    """Date the settlement of every invoice whose balance moved: the latest date among the payments and credit
    notes applied to it once nothing is left open, None while something is (a reversal reopens it)."""
    touched: set[Invoice] = session.info.pop(_TOUCHED, set())
    invoices = [i for i in touched if i.kind == "invoice"]
    pending = session.info.pop(_PENDING, set()) | _take_balances(session, invoices)
    if not invoices and not pending:
        return
    session.flush()
    many = _many(session, invoices)
    settled = [i for i in invoices if i.open_balance <= 0]
    dates = repo.settlement_dates(session, [i.id for i in settled])
    for invoice in invoices:
        settled_on = dates.get(invoice.id) if invoice.open_balance <= 0 else None
        if invoice.settled_on == settled_on:  # a new invoice is open and undated already: no UPDATE for it
            continue
        if invoice in pending or (many and inspect(invoice).persistent and not inspect(invoice).modified):
            set_committed_value(invoice, "settled_on", settled_on)
            pending.add(invoice)
        else:
            invoice.settled_on = settled_on
    _write_balances(session, pending)
    session.flush()


def flush(session: Session, *, write: bool = False) -> None:
    """`session.flush()`, but the new balances of many touched invoices held back, to be written with their
    settlement dates by `stamp` (one UPDATE per invoice, not one for the balance and one for the date); `write`
    writes them now (before a savepoint: rolled back, it would reload them from the database)."""
    touched: set[Invoice] = session.info.get(_TOUCHED, set())
    pending = session.info.setdefault(_PENDING, set())
    pending |= _take_balances(session, [i for i in touched if i.kind == "invoice"])
    if write:
        _write_balances(session, pending)
        pending.clear()
    session.flush()


def pending_balances(session: Session) -> dict[int, Decimal]:
    """The balances `flush` held back, by invoice id: the database has them as they were."""
    return {i.id: i.open_balance for i in session.info.get(_PENDING, ())}


@event.listens_for(Session, "before_commit")
def _nothing_held_back(session: Session) -> None:
    if session.info.get(_PENDING):
        raise RuntimeError("invoice balances held back by allocation.flush were never written (allocation.stamp)")


@event.listens_for(Session, "after_rollback")
def _forget_held_back(session: Session) -> None:
    session.info.pop(_PENDING, None)  # rolled back with the rest: the objects are expired


# The columns of an invoice that cash moves; an invoice changed in any other is left to the ORM's flush.
_BALANCE_KEYS = frozenset({"open_balance", "settled_on", "updated_at"})
_PENDING = "balances_pending"


def _take_balances(session: Session, invoices: list[Invoice]) -> set[Invoice]:
    """Of these invoices, those whose only change is their balance or settlement date, when they are many: taken
    out of the ORM's flush (their values as committed), to be written as rows by `_write_balances`. The ORM's
    one UPDATE per invoice, twice (the balance, then the settlement date), was 18 of a payments import's 47 s:
    a batch of 5,000 payments moves 13,000 invoices. Not in a savepoint: rolled back, it would leave these values
    in memory (the ORM expires only what it flushed itself)."""
    if not _many(session, invoices):
        return set()
    others = set(inspect(Invoice).column_attrs.keys()) - _BALANCE_KEYS
    taken = set()
    for invoice in invoices:
        state = inspect(invoice)
        if not state.persistent or not state.modified:
            continue
        if state.unmodified_intersection(others) != others:
            continue
        set_committed_value(invoice, "open_balance", invoice.open_balance)
        set_committed_value(invoice, "settled_on", invoice.settled_on)
        taken.add(invoice)
    return taken


def _many(session: Session, invoices: list[Invoice]) -> bool:
    return len(invoices) >= UPDATE_FROM_ROWS and not session.in_nested_transaction()


def _write_balances(session: Session, invoices: set[Invoice]) -> None:
    if not invoices:
        return
    now = utcnow()  # as the ORM's UPDATE stamps it
    update_rows(session, Invoice, [{"id": i.id, "open_balance": i.open_balance, "settled_on": i.settled_on,
                                    "updated_at": now} for i in invoices])
    for invoice in invoices:
        set_committed_value(invoice, "updated_at", now)


def _apply(
    session: Session,
    queue: list[Invoice],
    amount: Decimal,
    rows: list[dict[str, Any]],
    *,
    buyer_id: int,
    payment: Payment | None = None,
    credit_note: Invoice | None = None,
) -> Decimal:
    """Allocate up to `amount` over `queue` in order, the allocations added to `rows`; returns what is left."""
    for invoice in queue:
        if amount <= 0:
            break
        if invoice.open_balance <= 0:
            continue
        take = min(amount, invoice.open_balance)
        invoice.open_balance -= take
        touch(session, invoice)
        amount -= take
        rows.append({"tenant_id": bound_tenant(session), "buyer_id": buyer_id, "invoice_id": invoice.id,
                     "payment_id": payment.id if payment is not None else None,
                     "credit_note_id": credit_note.id if credit_note is not None else None,
                     "amount": take, "explicit": False})
    return amount


def settle(session: Session, buyer_ids: Iterable[int]) -> None:
    """Apply every unapplied credit note and payment of these buyers to their open invoices."""
    ids = sorted(set(buyer_ids))
    if not ids:
        stamp(session)
        return
    flush(session)
    credit_notes = repo.unapplied_credit_notes(session, ids)
    payments = repo.unapplied_payments(session, ids)
    if not credit_notes and not payments:
        stamp(session)
        return
    needed: dict[tuple[int, str], Decimal] = defaultdict(Decimal)
    for note in credit_notes:
        needed[(note.buyer_id, note.currency)] += note.open_balance
    for payment in payments:
        needed[(payment.buyer_id, payment.currency)] += payment.unapplied
    queues: dict[tuple[int, str], list[Invoice]] = defaultdict(list)
    for invoice in repo.open_invoices(session, ids, needed, pending_balances(session)):
        queues[(invoice.buyer_id, invoice.currency)].append(invoice)
    # The invoices credit notes name, open, wherever they stand in their queue.
    by_ref = {ref: i for ref, i in repo.invoices_by_refs(session, {n.applies_to for n in credit_notes
                                                                   if n.applies_to}).items() if i.open_balance > 0}
    # The allocations as plain rows, written in one go (by COPY when many): as ORM objects, a payment batch of 1,000
    # on one buyer spent a tenth of its time having psycopg parse the ORM's many-row INSERTs.
    rows: list[dict[str, Any]] = []
    for note in credit_notes:
        queue = queues.get((note.buyer_id, note.currency), [])
        named = by_ref.get(note.applies_to) if note.applies_to else None
        if named is not None and named.buyer_id == note.buyer_id and named.currency == note.currency:
            queue = [named, *[i for i in queue if i is not named]]
        note.open_balance = _apply(session, queue, note.open_balance, rows, buyer_id=note.buyer_id,
                                   credit_note=note)
    # The payments' new unapplied amounts in one statement too (`update_rows`), not as ORM changes: one UPDATE per
    # payment, 90 ms for 1,000.
    applied: list[dict[str, Any]] = []
    for payment in payments:
        queue = queues.get((payment.buyer_id, payment.currency), [])
        left = _apply(session, queue, payment.unapplied, rows, buyer_id=payment.buyer_id, payment=payment)
        if left != payment.unapplied:
            applied.append({"id": payment.id, "unapplied": left})
            set_committed_value(payment, "unapplied", left)
            session.expire(payment, ["updated_at"])  # as the UPDATE stamps it
    flush(session)
    update_rows(session, Payment, applied)
    insert_rows(session, Allocation, rows)
    stamp(session)


def release(session: Session, allocations: Iterable[Allocation], *, skip: object = None, flush: bool = True) -> None:
    """Take allocations back: the invoice reopens and the payment or credit note has the amount again.

    `skip` is the document being corrected or reversed: its own balance is reset by the caller. `flush=False`
    leaves the changes to the caller's next flush (a batch that flushes once).
    """
    for a in allocations:
        invoice = session.get(Invoice, a.invoice_id)
        if invoice is not None and invoice is not skip:
            invoice.open_balance += a.amount
            touch(session, invoice)
        if a.payment_id is not None:
            payment = session.get(Payment, a.payment_id)
            if payment is not None and payment is not skip:
                payment.unapplied += a.amount
        if a.credit_note_id is not None:
            note = session.get(Invoice, a.credit_note_id)
            if note is not None and note is not skip:
                note.open_balance += a.amount
        session.delete(a)
    if flush:
        session.flush()
