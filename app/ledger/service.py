"""Ledger operations: upsert buyers, invoices and payments; reverse payments.

Services never commit: the request's unit of work does. Each operation ends by
refreshing the stored exposure of the buyers it touched, in the same transaction.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any, TypeVar, cast

from pydantic import BaseModel, ValidationError
from sqlalchemy.orm import Session

from app import metrics
from app.core.clock import utcnow
from app.core.context import Context
from app.core.db import assign_ids, insert_rows
from app.core.errors import Conflict, Invalid, NotFound, ProblemError, TooLarge, validation_problem
from app.core.money import quantize
from app.exposure import changes, revaluation
from app.exposure import service as exposure
from app.ledger import allocation
from app.ledger import repository as repo
from app.ledger.models import Allocation, Buyer, Invoice, InvoiceRevision, Payment
from app.ledger.schemas import (
    AppliedOut,
    BatchOut,
    BuyerBalance,
    BuyerIn,
    BuyerOut,
    CorrectionOut,
    InvoiceBatchItem,
    InvoiceIn,
    InvoiceOut,
    ItemResult,
    PaymentApplied,
    PaymentBatchItem,
    PaymentIn,
    PaymentOut,
)

M = TypeVar("M", bound=BaseModel)


# --- buyers -------------------------------------------------------------------------------------


def upsert_buyer(ctx: Context, ref: str, body: BuyerIn) -> tuple[Buyer, bool]:
    [(buyer, outcome)] = upsert_buyers(ctx, [(ref, body)])
    return buyer, outcome == "created"


def upsert_buyers(ctx: Context, items: Sequence[tuple[str, BuyerIn]]) -> list[tuple[Buyer, str]]:
    """Create or update buyers: the stored ones locked in one statement, the new ones written in one flush, and the
    exposure of those created or changed refreshed once for all (a file of 50,000 buyers imported one by one took
    a refresh, some twenty statements, per buyer). Each item's buyer and outcome: created, updated, unchanged."""
    session = ctx.session
    buyers = repo.buyers_by_refs(session, (ref for ref, _ in items), for_update=True)
    out: list[tuple[Buyer, str]] = []
    moved: list[Buyer] = []
    for ref, body in items:
        values = body.model_dump()
        buyer = buyers.get(ref)
        if buyer is None:
            buyer = buyers[ref] = Buyer(ref=ref, **values)
            session.add(buyer)
            outcome = "created"
        elif any(getattr(buyer, f) != v for f, v in values.items()):
            for field, value in values.items():
                setattr(buyer, field, value)
            outcome = "updated"
        else:
            out.append((buyer, "unchanged"))
            continue
        moved.append(buyer)
        out.append((buyer, outcome))
    session.flush()
    if moved:
        exposure.refresh_buyers(ctx, [b.id for b in moved])
    return out


def buyer_out(ctx: Context, buyer: Buyer, *, with_balances: bool = False) -> BuyerOut:
    out = BuyerOut(
        buyer_ref=buyer.ref,
        name=buyer.name,
        country=buyer.country,
        registration_id=buyer.registration_id,
        insurer_buyer_id=buyer.insurer_buyer_id,
        sector=buyer.sector,
    )
    if with_balances:
        sums = repo.buyer_balances(ctx.session, buyer.id)
        out.balances = [
            BuyerBalance(
                currency=c,
                balance=quantize(s["invoices"] - s["credit_notes"] - s["payments"], c),
                open_invoices=quantize(s["open"], c),
                unapplied_credit=quantize(s["unapplied"], c),
            )
            for c, s in sorted(sums.items())
        ]
    return out


def get_buyer(ctx: Context, ref: str) -> Buyer:
    buyer = repo.buyer_by_ref(ctx.session, ref)
    if buyer is None:
        raise NotFound(f"No buyer '{ref}'.")
    return buyer


# --- batches ------------------------------------------------------------------------------------


@dataclass
class Item:
    index: int
    ref: str | None
    body: Any = None
    problem: ProblemError | None = None
    outcome: str = "rejected"


def _validate_items(raw: Sequence[dict[str, Any]], model: type[M], ref_field: str) -> list[Item]:
    items: list[Item] = []
    for index, data in enumerate(raw):
        ref = data.get(ref_field) if isinstance(data, dict) else None
        item = Item(index, ref if isinstance(ref, str) else None)
        try:
            item.body = model.model_validate(data)
        except ValidationError as exc:
            item.problem = validation_problem(cast(list[dict[str, Any]], exc.errors()))
        items.append(item)
    return items


def _without_ref(item: BaseModel, model: type[M], ref_field: str) -> M:
    """The item's body without its ref, already validated as part of the batch item: not validated again."""
    return model.model_construct(**{k: getattr(item, k) for k in type(item).model_fields if k != ref_field})


def _batch_out(items: list[Item]) -> BatchOut:
    results = [
        ItemResult(
            index=i.index,
            ref=i.ref,
            outcome=i.outcome,  # type: ignore[arg-type]
            problem=i.problem.body() if i.problem is not None else None,
        )
        for i in items
    ]
    count = {k: sum(1 for r in results if r.outcome == k) for k in ("created", "updated", "unchanged", "rejected")}
    return BatchOut(items=results, **count)


def check_batch_size(ctx: Context, items: Sequence[Any]) -> None:
    if len(items) > ctx.settings.max_batch_items:
        raise TooLarge(
            f"A batch holds at most {ctx.settings.max_batch_items} items; this one has {len(items)}. Split it.",
            field="/items",
        )


# --- invoices and credit notes ------------------------------------------------------------------

_INVOICE_FIELDS = ("kind", "currency", "amount", "issue_date", "due_date", "applies_to")


@dataclass(slots=True)
class _Doc:
    """An invoice or credit note as a batch sees it: a stored one as read (its id set), or one first seen in this
    batch, to be written as a plain row (id None). Only a document the batch corrects becomes an ORM object."""

    ref: str
    buyer_id: int
    kind: str
    currency: str
    amount: Decimal
    issue_date: date
    due_date: date
    original_due_date: date
    applies_to: str | None
    id: int | None = None

    def row(self, tenant_id: str, now: datetime) -> dict[str, Any]:
        return {"tenant_id": tenant_id, "ref": self.ref, "buyer_id": self.buyer_id, "kind": self.kind,
                "currency": self.currency, "amount": self.amount, "issue_date": self.issue_date,
                "due_date": self.due_date, "original_due_date": self.original_due_date, "applies_to": self.applies_to,
                "open_balance": self.amount, "settled_on": None, "revision": 1, "created_at": now,
                "updated_at": now}

    def orm(self) -> Invoice:
        """A new document as an ORM object, to be added to the session."""
        return Invoice(ref=self.ref, buyer_id=self.buyer_id, kind=self.kind, currency=self.currency,
                       amount=self.amount, issue_date=self.issue_date, due_date=self.due_date,
                       original_due_date=self.original_due_date, applies_to=self.applies_to, open_balance=self.amount,
                       revision=1)


def _stored(session: Session, refs: Iterable[str]) -> dict[tuple[str, str], _Doc]:
    """The stored invoices and credit notes numbered `refs`, by (kind, ref)."""
    return {(d.kind, d.ref): _Doc(**d._mapping) for d in repo.document_rows(session, refs)}


class _InvoiceIngest:
    """Applies invoice items one by one against state preloaded in a few queries.

    Every check runs before anything is changed, so a rejected item leaves nothing behind.
    """

    def __init__(self, ctx: Context, items: Sequence[tuple[str, InvoiceIn]]) -> None:
        session = ctx.session
        self.ctx = ctx
        self.buyers = repo.buyers_by_refs(session, (b.buyer_ref for _, b in items), for_update=True)
        self.buyers_by_id = {b.id: b for b in self.buyers.values()}
        refs = {r for r, _ in items} | {b.applies_to for _, b in items if b.applies_to}
        # By (kind, ref): each kind has its numbering. Read as plain rows: a replayed batch builds no ORM object.
        self.invoices: dict[tuple[str, str], Invoice | _Doc] = dict(_stored(session, refs))
        others = {d.buyer_id for d in self.invoices.values()} - set(self.buyers_by_id)
        if others:  # documents of other buyers, which an item may move: their buyers locked too, in one statement
            self.buyers_by_id.update((b.id, b) for b in repo.lock_buyers(session, others))
            self.invoices = dict(_stored(session, refs))  # read again, as of the locks
        # The stored documents the items correct, and their allocations: loaded in one query each.
        corrected = {d.id for r, b in items if isinstance(d := self.invoices.get((b.kind, r)), _Doc)
                     and d.id is not None and not self._same(d, b)}
        self.loaded = {i.id: i for i in repo.invoices_by_ids(session, corrected)}  # held: the identity map is weak
        self.allocations = repo.allocations_of_invoices(session, corrected)
        self.released: set[int] = set()  # allocations taken back in this batch
        self.touched: set[int] = set()
        self.created: dict[tuple[str, str], _Doc] = {}  # by (kind, ref), in the batch's order

    def apply(self, ref: str, body: InvoiceIn) -> str:
        session = self.ctx.session
        buyer = self.buyers.get(body.buyer_ref)
        if buyer is None:
            raise Invalid(
                f"buyer_ref: no buyer '{body.buyer_ref}'; PUT /v1/buyers/{{buyer_ref}} first.", field="/buyer_ref"
            )
        buyer_id = buyer.id  # read once: an ORM attribute costs a descriptor call each time
        if body.applies_to is not None:
            target = self.invoices.get(("invoice", body.applies_to))
            if target is None or target.kind != "invoice":
                raise Invalid(f"applies_to: no invoice '{body.applies_to}'.", field="/applies_to")
            if target.buyer_id != buyer_id:
                raise Invalid(f"applies_to: invoice '{body.applies_to}' belongs to another buyer.", field="/applies_to")
            if target.currency != body.currency:
                raise Invalid(f"applies_to: invoice '{body.applies_to}' is in {target.currency}.", field="/applies_to")
        invoice = self.invoices.get((body.kind, ref))
        if invoice is None:
            new = _Doc(ref=ref, buyer_id=buyer_id, kind=body.kind, currency=body.currency, amount=body.amount,
                       issue_date=body.issue_date, due_date=body.due_date, original_due_date=body.due_date,
                       applies_to=body.applies_to)
            changes.note(session, buyer_id, new.issue_date, new.original_due_date)
            self.created[(body.kind, ref)] = new
            self.invoices[(body.kind, ref)] = new
            self.touched.add(buyer_id)
            return "created"
        if self._same(invoice, body):
            return "unchanged"
        if isinstance(invoice, _Doc):  # corrected: an ORM object after all
            key = (invoice.kind, invoice.ref)
            if invoice.id is None:  # created earlier in this batch
                del self.created[key]
                invoice = invoice.orm()
                session.add(invoice)
            else:
                invoice = self.loaded.get(invoice.id) or session.get_one(Invoice, invoice.id)
            self.invoices[key] = invoice
        return self._correct(invoice, buyer, body)

    def _same(self, invoice: Invoice | _Doc, body: InvoiceIn) -> bool:
        buyer = self.buyers.get(body.buyer_ref)
        return (buyer is not None and invoice.buyer_id == buyer.id
                and all(getattr(invoice, f) == getattr(body, f) for f in _INVOICE_FIELDS))

    def finish(self) -> None:
        """Write the new documents in one statement (COPY on PostgreSQL), then settle and refresh the touched
        buyers. The new documents are plain rows, never ORM objects: building and tracking one per invoice was
        most of a large batch's Python time."""
        now = utcnow()
        insert_rows(self.ctx.session, Invoice, [n.row(self.ctx.tenant.id, now) for n in self.created.values()])
        metrics.note_new(self.ctx.session, (n.kind for n in self.created.values()))
        _finish(self.ctx, self.touched)

    def _correct(self, invoice: Invoice, buyer: Buyer, body: InvoiceIn) -> str:
        session = self.ctx.session
        if invoice.buyer_id not in self.buyers_by_id:  # moved here by another transaction since: rare
            self.buyers_by_id.update((b.id, b) for b in repo.lock_buyers(session, [invoice.buyer_id]))
        # Its allocations as loaded for the batch, less those an earlier item of the batch took back (an invoice
        # created in this batch has none).
        allocations = [a for a in self.allocations.get(invoice.id, []) if a.id not in self.released]
        kept = [a for a in allocations if a.explicit and a.invoice_id == invoice.id]
        explicit = sum((a.amount for a in kept), Decimal(0))
        if kept and (body.kind != invoice.kind or buyer.id != invoice.buyer_id or body.currency != invoice.currency):
            raise Invalid(
                f"Payments are allocated to invoice '{invoice.ref}' by the ERP ({explicit}); reverse them before "
                "changing its buyer, kind or currency.",
                field="/buyer_ref" if buyer.id != invoice.buyer_id else "/kind",
            )
        if body.amount < explicit:
            raise Invalid(f"amount: {explicit} is already paid on this invoice by allocated payments.", field="/amount")
        released = [a for a in allocations if a not in kept]
        self.released.update(a.id for a in released)
        # Flushed with the batch (one statement per kind of change, not a flush per item); an invoice created in
        # this batch is flushed now, to be recorded with an id like any other.
        allocation.release(session, released, skip=invoice, flush=invoice.id is None)
        previous = {f: str(getattr(invoice, f)) if getattr(invoice, f) is not None else None for f in _INVOICE_FIELDS}
        previous["amount"] = str(quantize(invoice.amount, invoice.currency))
        previous["buyer_ref"] = (
            self.buyers_by_id[invoice.buyer_id].ref if invoice.buyer_id in self.buyers_by_id else None
        )
        if invoice.id is not None:
            session.add(
                InvoiceRevision(invoice_id=invoice.id, revision=invoice.revision, previous=json.dumps(previous))
            )
        self.touched.update({invoice.buyer_id, buyer.id})
        changes.note(session, invoice.buyer_id, invoice.issue_date, invoice.original_due_date)  # where it was
        for f in _INVOICE_FIELDS:
            setattr(invoice, f, getattr(body, f))
        invoice.buyer_id = buyer.id
        invoice.original_due_date = min(invoice.original_due_date, body.due_date)
        invoice.open_balance = body.amount - explicit
        invoice.revision += 1
        allocation.touch(session, invoice)
        return "updated"


def ingest_invoices(ctx: Context, raw: Sequence[dict[str, Any]]) -> BatchOut:
    return _batch_out(invoice_items(ctx, raw))


def invoice_items(ctx: Context, raw: Sequence[dict[str, Any]]) -> list[Item]:
    """Validate and write a batch of invoices; each item says its outcome, or its problem."""
    check_batch_size(ctx, raw)
    items = _validate_items(raw, InvoiceBatchItem, "invoice_ref")
    valid = [i for i in items if i.problem is None]
    ingest = _InvoiceIngest(ctx, [(i.body.invoice_ref, i.body) for i in valid])
    for item in valid:
        try:  # a batch item is an InvoiceIn with its ref: apply reads the InvoiceIn fields only
            item.outcome = ingest.apply(item.body.invoice_ref, item.body)
        except ProblemError as problem:
            item.problem = problem
    ingest.finish()
    return items


def put_invoice(ctx: Context, ref: str, body: InvoiceIn) -> tuple[Invoice, str]:
    ingest = _InvoiceIngest(ctx, [(ref, body)])
    outcome = ingest.apply(ref, body)
    ingest.finish()
    invoice = ingest.invoices[(body.kind, ref)]
    if isinstance(invoice, _Doc):  # written as a row, or unchanged: read as it stands (one indexed lookup)
        return repo.documents_by_ref(ctx.session, ref, body.kind)[0], outcome
    return invoice, outcome


def _finish(ctx: Context, touched: set[int]) -> None:
    ctx.session.flush()
    allocation.settle(ctx.session, touched)
    _refresh(ctx, touched)


def _refresh(ctx: Context, touched: set[int]) -> None:
    """Bring the touched buyers' stored exposure up to date: re-walked now, or, in a bulk import, marked stale
    for the revaluation the import runs at its end (queued in this transaction: durable with the ledger rows)."""
    since = changes.take(ctx.session, touched)
    if ctx.defer_exposure and touched:
        revaluation.queue(ctx, revaluation.Affected(buyers=frozenset(touched)), "import")
        exposure.bump_version(ctx)
        return
    exposure.refresh_buyers(ctx, touched, since=since)


def get_invoice(ctx: Context, ref: str, kind: str | None = None) -> Invoice:
    """The invoice or credit note numbered `ref`; `kind` says which when both exist."""
    found = repo.documents_by_ref(ctx.session, ref, kind)
    if not found:
        raise NotFound(f"No {(kind or 'invoice').replace('_', ' ')} '{ref}'.")
    if len(found) > 1:
        raise Conflict(
            f"Both an invoice and a credit note are numbered '{ref}': ask for one with ?kind=invoice or "
            "?kind=credit_note.",
            field="/kind",
        )
    return found[0]


def invoice_status(invoice: Invoice, paid_by_payment: bool) -> str:
    if invoice.kind == "credit_note":
        return "credited" if invoice.open_balance == 0 else "open"
    if invoice.open_balance == invoice.amount:
        return "open"
    if invoice.open_balance > 0:
        return "partially_paid"
    return "paid" if paid_by_payment else "credited"


def invoice_out(invoice: Invoice, buyer_ref: str, *, paid: bool, applied: list[AppliedOut] | None = None) -> InvoiceOut:
    c = invoice.currency
    return InvoiceOut(
        invoice_ref=invoice.ref,
        buyer_ref=buyer_ref,
        kind=invoice.kind,  # type: ignore[arg-type]
        currency=c,
        amount=quantize(invoice.amount, c),
        issue_date=invoice.issue_date,
        due_date=invoice.due_date,
        original_due_date=invoice.original_due_date,
        applies_to=invoice.applies_to,
        open_balance=quantize(invoice.open_balance, c),
        status=invoice_status(invoice, paid),
        revision=invoice.revision,
        applied=applied,
    )


def invoice_detail(ctx: Context, invoice: Invoice) -> InvoiceOut:
    session = ctx.session
    allocations = repo.allocations_of_invoice(session, invoice.id)
    applied: list[AppliedOut] = []
    for a in allocations:
        if invoice.kind == "invoice" and a.payment_id is not None:
            p = session.get(Payment, a.payment_id)
            applied.append(AppliedOut(source="payment", ref=p.ref if p else "?", amount=a.amount, explicit=a.explicit))
        elif a.credit_note_id is not None:
            other = a.invoice_id if invoice.kind == "credit_note" else a.credit_note_id
            doc = session.get(Invoice, other)
            applied.append(
                AppliedOut(source="credit_note", ref=doc.ref if doc else "?", amount=a.amount, explicit=a.explicit)
            )
    for item in applied:
        item.amount = quantize(item.amount, invoice.currency)
    buyer = session.get(Buyer, invoice.buyer_id)
    paid = any(a.source == "payment" for a in applied)
    out = invoice_out(invoice, buyer.ref if buyer else "?", paid=paid, applied=applied)
    # A first revision was never corrected: no query for its corrections.
    out.corrections = [CorrectionOut(revision=r.revision, previous=json.loads(r.previous), recorded_at=r.recorded_at)
                       for r in repo.revisions_of_invoice(session, invoice.id)] if invoice.revision > 1 else []
    return out


# --- payments -----------------------------------------------------------------------------------


def _payment_body(body: PaymentIn) -> str:
    return body.model_dump_json()


class _PaymentIngest:
    """Payments applied against state preloaded for the whole batch: buyers (locked, by id), the payments and the
    invoices the items name, each read once. Unallocated cash is applied once per buyer at the end (`finish`),
    after every item's explicit allocations: one pass over each buyer's open invoices per batch."""

    def __init__(self, ctx: Context, items: Sequence[tuple[str, PaymentIn]]) -> None:
        session = ctx.session
        self.ctx = ctx
        # Lock every buyer of the batch up front, in one pass by id (one lock order everywhere): the items'
        # buyers and the buyers the payments are on now (a corrected payment may move). Taken item by item in
        # the body's order, two batches (or a batch and an invoice batch) deadlocked.
        refs = {b.buyer_ref for _, b in items}
        self.payments = repo.payments_by_refs(session, (r for r, _ in items))
        locked = repo.lock_buyers(session, {p.buyer_id for p in self.payments.values()}, refs)
        self.buyers = {b.ref: b for b in locked if b.ref in refs}
        self.payments = repo.payments_by_refs(session, self.payments, fresh=True)  # as of the locks
        moved = {p.buyer_id for p in self.payments.values()} - {b.id for b in locked}
        repo.lock_buyers(session, moved)  # a payment moved to another buyer meanwhile: rare
        self.invoices = repo.invoices_by_refs(session, {a.invoice_ref for _, b in items for a in b.allocations})
        self.touched: set[int] = set()
        # The explicit allocations of the items posted, written together once the payments have their ids: a
        # flush per payment for its id took half of a payments import.
        self.allocations: list[tuple[Payment, Invoice, Decimal]] = []
        self.created: list[Payment] = []  # given their ids before they are flushed (`assign_ids`)

    def apply(self, ref: str, body: PaymentIn) -> tuple[Payment, str]:
        payment = self.payments.get(ref)
        if payment is None or payment.reversed_at is not None:
            return self.post(ref, body)
        self._allocate(write=True)  # what the savepoint may roll back is this item's own work only
        # A correction releases the payment's allocations before checking the new ones: in a savepoint, so a
        # rejected correction leaves nothing behind and the rest of the batch stands.
        with self.ctx.session.begin_nested():
            return self.post(ref, body)

    def post(self, ref: str, body: PaymentIn) -> tuple[Payment, str]:
        session = self.ctx.session
        buyer = self.buyers.get(body.buyer_ref)
        if buyer is None:
            raise Invalid(f"buyer_ref: no buyer '{body.buyer_ref}'.", field="/buyer_ref")
        payment = self.payments.get(ref)
        if payment is not None:
            if payment.reversed_at is not None:
                raise Conflict(f"Payment '{ref}' was reversed; post the new payment under another payment_ref.")
            if payment.body == _payment_body(body):
                return payment, "unchanged"
            self.touched.add(payment.buyer_id)
            self._allocate()  # a payment posted earlier in this batch has its id and its allocations
            allocation.release(session, repo.allocations_of_payment(session, payment.id), skip=payment)
            outcome = "updated"
        else:
            outcome = "created"

        # Validate the ERP's allocations against the balances as they stand (after any release above).
        wanted: dict[str, Decimal] = {}
        for a in body.allocations:
            wanted[a.invoice_ref] = wanted.get(a.invoice_ref, Decimal(0)) + a.amount
        if sum(wanted.values(), Decimal(0)) > body.amount:
            raise Invalid("allocations: they add up to more than the payment amount.", field="/allocations")
        targets: list[tuple[Invoice, Decimal]] = []
        for i, a in enumerate(body.allocations):
            invoice = self.invoices.get(a.invoice_ref)
            where = f"/allocations/{i}"
            if invoice is None or invoice.kind != "invoice":
                raise Invalid(f"allocations[{i}].invoice_ref: no invoice '{a.invoice_ref}'.",
                              field=f"{where}/invoice_ref")
            if invoice.buyer_id != buyer.id:
                raise Invalid(
                    f"allocations[{i}].invoice_ref: invoice '{a.invoice_ref}' belongs to another buyer.",
                    field=f"{where}/invoice_ref",
                )
            if invoice.currency != body.currency:
                raise Invalid(
                    f"allocations[{i}].invoice_ref: invoice '{a.invoice_ref}' is in {invoice.currency}, the payment "
                    f"in {body.currency}.",
                    field=f"{where}/invoice_ref",
                )
            total = wanted.pop(a.invoice_ref, None)
            if total is None:
                continue
            if total > invoice.open_balance:
                raise Invalid(
                    f"allocations[{i}].amount: {total} over-allocates invoice '{a.invoice_ref}', whose open balance "
                    f"is {quantize(invoice.open_balance, invoice.currency)}.",
                    field=f"{where}/amount",
                )
            targets.append((invoice, total))

        if payment is None:
            payment = Payment(ref=ref, unapplied=body.amount, body="", buyer_id=buyer.id, currency=body.currency,
                              amount=body.amount, received_on=body.received_on)
            session.add(payment)
            self.payments[ref] = payment
            self.created.append(payment)
        payment.buyer_id = buyer.id
        payment.currency = body.currency
        payment.amount = body.amount
        payment.received_on = body.received_on
        payment.body = _payment_body(body)
        explicit = Decimal(0)
        for invoice, amount in targets:
            invoice.open_balance -= amount
            allocation.touch(session, invoice)
            explicit += amount
            self.allocations.append((payment, invoice, amount))
        payment.unapplied = body.amount - explicit
        self.touched.add(buyer.id)
        return payment, outcome

    def _allocate(self, *, write: bool = False) -> None:
        session = self.ctx.session
        assign_ids(session, self.created)  # one executemany without RETURNING (PostgreSQL)
        self.created = []
        allocation.flush(session, write=write)  # the payments have their ids
        insert_rows(session, Allocation, [
            {"tenant_id": self.ctx.tenant.id, "buyer_id": invoice.buyer_id, "invoice_id": invoice.id,
             "payment_id": payment.id, "credit_note_id": None, "amount": amount, "explicit": True}
            for payment, invoice, amount in self.allocations])
        self.allocations = []

    def finish(self) -> None:
        """Apply what is unapplied, then refresh the touched buyers' exposure."""
        self._allocate()
        allocation.settle(self.ctx.session, self.touched)
        _refresh(self.ctx, self.touched)


def put_payment(ctx: Context, ref: str, body: PaymentIn) -> tuple[Payment, str]:
    ingest = _PaymentIngest(ctx, [(ref, body)])
    payment, outcome = ingest.post(ref, body)
    ingest.finish()
    return payment, outcome


def ingest_payments(ctx: Context, raw: Sequence[dict[str, Any]]) -> BatchOut:
    return _batch_out(payment_items(ctx, raw))


def payment_items(ctx: Context, raw: Sequence[dict[str, Any]]) -> list[Item]:
    """Validate and write a batch of payments; each item says its outcome, or its problem."""
    check_batch_size(ctx, raw)
    items = _validate_items(raw, PaymentBatchItem, "payment_ref")
    valid = [i for i in items if i.problem is None]
    ingest = _PaymentIngest(ctx, [(i.body.payment_ref, i.body) for i in valid])
    for item in valid:
        body = _without_ref(item.body, PaymentIn, "payment_ref")
        try:
            _, item.outcome = ingest.apply(item.body.payment_ref, body)
        except ProblemError as problem:
            item.problem = problem
            item.outcome = "rejected"
    ingest.finish()
    return items


def reverse_payment(ctx: Context, ref: str) -> Payment:
    session = ctx.session
    payment = repo.payment_by_ref(session, ref)
    if payment is None:
        raise NotFound(f"No payment '{ref}'.")
    if payment.reversed_at is None:
        repo.lock_buyers(session, [payment.buyer_id])
        allocation.release(session, repo.allocations_of_payment(session, payment.id), skip=payment)
        payment.reversed_at = utcnow()
        payment.unapplied = Decimal(0)
        allocation.settle(session, [payment.buyer_id])
        exposure.refresh_buyers(ctx, [payment.buyer_id], since=changes.take(session, [payment.buyer_id]))
    return payment


def get_payment(ctx: Context, ref: str) -> Payment:
    payment = repo.payment_by_ref(ctx.session, ref)
    if payment is None:
        raise NotFound(f"No payment '{ref}'.")
    return payment


def payment_out(ctx: Context, payment: Payment) -> PaymentOut:
    session = ctx.session
    c = payment.currency
    applied = []
    for a in repo.allocations_of_payment(session, payment.id):
        invoice = session.get(Invoice, a.invoice_id)
        applied.append(
            PaymentApplied(
                invoice_ref=invoice.ref if invoice else "?", amount=quantize(a.amount, c), explicit=a.explicit
            )
        )
    buyer = session.get(Buyer, payment.buyer_id)
    return PaymentOut(
        payment_ref=payment.ref,
        buyer_ref=buyer.ref if buyer else "?",
        currency=c,
        amount=quantize(payment.amount, c),
        received_on=payment.received_on,
        unapplied=quantize(payment.unapplied, c),
        reversed=payment.reversed_at is not None,
        applied=applied,
    )
