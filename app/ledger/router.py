"""Ledger endpoints: buyers, invoices and credit notes, payments. HTTP only: the work is in service.py."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response, status

from app.core.context import ContextDep
from app.core.fields import Country, IsoDate, Ref
from app.core.idempotency import IdempotencyDep
from app.core.pagination import Cursor, Limit, Page, decode_cursor, encode_cursor
from app.core.paths import RefPath
from app.core.security import IngestAccess, ReadAccess
from app.ledger import repository as repo
from app.ledger import service
from app.ledger.schemas import (
    BatchIn,
    BatchOut,
    BuyerIn,
    BuyerOut,
    InvoiceIn,
    InvoiceKind,
    InvoiceOut,
    InvoiceStatus,
    PaymentIn,
    PaymentOut,
)

router = APIRouter(prefix="/v1", tags=["ledger"])

def _created(response: Response, outcome: str) -> None:
    response.status_code = status.HTTP_201_CREATED if outcome == "created" else status.HTTP_200_OK


@router.put("/buyers/{buyer_ref:ref}", response_model=BuyerOut, responses={201: {"model": BuyerOut}})
def put_buyer(buyer_ref: RefPath, body: BuyerIn, ctx: ContextDep, _: IngestAccess, response: Response) -> BuyerOut:
    """Create or update a buyer."""
    buyer, created = service.upsert_buyer(ctx, buyer_ref, body)
    _created(response, "created" if created else "updated")
    return service.buyer_out(ctx, buyer)


@router.get("/buyers", response_model=Page[BuyerOut])
def list_buyers(
    ctx: ContextDep, _: ReadAccess, country: Annotated[Country | None, Query()] = None,
    limit: Limit = 100, cursor: Cursor = None,
) -> Page[BuyerOut]:
    """Buyers, by reference."""
    after = decode_cursor(cursor, 1)
    rows = repo.buyers_page(ctx.session, country=country, after=after[0] if after else None, limit=limit + 1)
    items = [service.buyer_out(ctx, b) for b in rows[:limit]]
    return Page(items=items, next_cursor=encode_cursor([rows[limit - 1].ref]) if len(rows) > limit else None)


@router.get("/buyers/{buyer_ref:ref}", response_model=BuyerOut)
def get_buyer(buyer_ref: RefPath, ctx: ContextDep, _: ReadAccess) -> BuyerOut:
    """A buyer, with its balances."""
    return service.buyer_out(ctx, service.get_buyer(ctx, buyer_ref), with_balances=True)


@router.put("/invoices/{invoice_ref:ref}", response_model=InvoiceOut, responses={201: {"model": InvoiceOut}})
def put_invoice(
    invoice_ref: RefPath, body: InvoiceIn, ctx: ContextDep, _: IngestAccess, response: Response
) -> InvoiceOut:
    """Create or correct an invoice or a credit note."""
    invoice, outcome = service.put_invoice(ctx, invoice_ref, body)
    _created(response, outcome)
    return service.invoice_detail(ctx, invoice)


@router.post("/invoices/batch", response_model=BatchOut)
def post_invoice_batch(body: BatchIn, ctx: ContextDep, _: IngestAccess, idem: IdempotencyDep) -> Response:
    """Up to 5,000 invoices and credit notes, each validated and written on its own."""
    return idem.replay() or idem.respond(200, service.ingest_invoices(ctx, body.items))


@router.get("/invoices", response_model=Page[InvoiceOut])
def list_invoices(
    ctx: ContextDep,
    _: ReadAccess,
    buyer_ref: Annotated[Ref | None, Query()] = None,
    kind: InvoiceKind | None = None,
    status: InvoiceStatus | None = None,
    overdue: bool | None = Query(None, description="Only open invoices past their due date"),
    due_before: Annotated[IsoDate | None, Query()] = None,
    due_after: Annotated[IsoDate | None, Query()] = None,
    limit: Limit = 100,
    cursor: Cursor = None,
) -> Page[InvoiceOut]:
    """Invoices and credit notes, by reference then kind."""
    after = decode_cursor(cursor, 2)
    buyer_id = None
    if buyer_ref is not None:
        buyer_id = service.get_buyer(ctx, buyer_ref).id
    rows = repo.invoices_page(
        ctx.session, buyer_id=buyer_id, kind=kind, status=status,
        overdue_on=ctx.today if overdue else None, due_before=due_before, due_after=due_after,
        after=(str(after[0]), str(after[1])) if after else None, limit=limit + 1,
    )
    page = rows[:limit]
    paid = repo.paid_invoice_ids(ctx.session, (i.id for i, _ in page if i.open_balance < i.amount))
    items = [service.invoice_out(i, b, paid=i.id in paid) for i, b in page]
    last = rows[limit - 1][0] if len(rows) > limit else None
    return Page(items=items, next_cursor=encode_cursor([last.ref, last.kind]) if last is not None else None)


@router.get("/invoices/{invoice_ref:ref}", response_model=InvoiceOut, responses={409: {"description": "Ambiguous"}})
def get_invoice(
    invoice_ref: RefPath,
    ctx: ContextDep,
    _: ReadAccess,
    kind: Annotated[
        InvoiceKind | None,
        Query(description="Invoices and credit notes are numbered apart: when both hold this number, say which."),
    ] = None,
) -> InvoiceOut:
    """An invoice or a credit note, with what was applied to it and its corrections."""
    return service.invoice_detail(ctx, service.get_invoice(ctx, invoice_ref, kind))


@router.get("/credit-notes/{credit_note_ref:ref}", response_model=InvoiceOut)
def get_credit_note(credit_note_ref: RefPath, ctx: ContextDep, _: ReadAccess) -> InvoiceOut:
    """A credit note (the same as `GET /v1/invoices/{ref}?kind=credit_note`)."""
    return service.invoice_detail(ctx, service.get_invoice(ctx, credit_note_ref, "credit_note"))


@router.put("/payments/{payment_ref:ref}", response_model=PaymentOut, responses={201: {"model": PaymentOut}})
def put_payment(
    payment_ref: RefPath, body: PaymentIn, ctx: ContextDep, _: IngestAccess, response: Response
) -> PaymentOut:
    """Record a payment and allocate it to invoices."""
    payment, outcome = service.put_payment(ctx, payment_ref, body)
    _created(response, outcome)
    return service.payment_out(ctx, payment)


@router.post("/payments/batch", response_model=BatchOut)
def post_payment_batch(body: BatchIn, ctx: ContextDep, _: IngestAccess, idem: IdempotencyDep) -> Response:
    """Up to 5,000 payments, each validated and written on its own (in order)."""
    return idem.replay() or idem.respond(200, service.ingest_payments(ctx, body.items))


@router.get("/payments/{payment_ref:ref}", response_model=PaymentOut)
def get_payment(payment_ref: RefPath, ctx: ContextDep, _: ReadAccess) -> PaymentOut:
    """A payment, with its allocations."""
    return service.payment_out(ctx, service.get_payment(ctx, payment_ref))


@router.delete("/payments/{payment_ref:ref}", response_model=PaymentOut)
def reverse_payment(payment_ref: RefPath, ctx: ContextDep, _: IngestAccess) -> PaymentOut:
    """Reverse a bounced payment: the invoices it paid are open again."""
    return service.payment_out(ctx, service.reverse_payment(ctx, payment_ref))

