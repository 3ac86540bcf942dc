"""Coming claim deadlines: the unpaid, unclaimed invoices whose claim deadline falls within the next days.

Read from the stored invoice covers (each holds its claim deadline as the engine computed it), by index of the
deadline, so it answers from the same figures as the dashboards and polls with the same ETag.
"""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal
from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel
from sqlalchemy import select

from app.core.context import Context, ContextDep
from app.core.money import quantize
from app.core.pagination import Cursor, Limit, Page, cursor_date, decode_cursor, next_cursor
from app.core.security import ReadAccess
from app.exposure.models import BuyerExposure, InvoiceCover
from app.exposure.router import NOT_MODIFIED, Polled

router = APIRouter(prefix="/v1", tags=["alerts"])


class ClaimDeadlineOut(BaseModel):
    buyer_ref: str
    buyer_name: str
    country: str
    invoice_ref: str
    due_date: date
    claim_deadline: date
    days_left: int
    currency: str
    open_balance: Decimal
    covered: Decimal
    uncovered: Decimal


def claim_deadlines(ctx: Context, within_days: int) -> list[ClaimDeadlineOut]:
    until = ctx.today + timedelta(days=within_days)
    stmt = (select(InvoiceCover, BuyerExposure.buyer_ref, BuyerExposure.buyer_name, BuyerExposure.country)
            .join(BuyerExposure, BuyerExposure.buyer_id == InvoiceCover.buyer_id)
            .where(InvoiceCover.claim_deadline >= ctx.today, InvoiceCover.claim_deadline <= until,
                   InvoiceCover.claim_filed_on.is_(None), InvoiceCover.open_balance > 0))
    out = [
        ClaimDeadlineOut(
            buyer_ref=ref, buyer_name=name, country=country, invoice_ref=i.invoice_ref, due_date=i.due_date,
            claim_deadline=i.claim_deadline, days_left=(i.claim_deadline - ctx.today).days, currency=i.currency,
            open_balance=quantize(i.open_balance, i.currency),
            covered=quantize(i.covered_primary + i.covered_top_up, i.currency),
            uncovered=quantize(i.uncovered, i.currency),
        )
        for i, ref, name, country in ctx.session.execute(stmt) if i.claim_deadline is not None
    ]
    out.sort(key=lambda d: (d.claim_deadline, d.buyer_ref, d.invoice_ref))
    return out


def _key(d: ClaimDeadlineOut) -> list[str]:
    return [d.claim_deadline.isoformat(), d.buyer_ref, d.invoice_ref]


@router.get("/claim-deadlines", response_model=Page[ClaimDeadlineOut], responses=NOT_MODIFIED)
def list_claim_deadlines(
    ctx: ContextDep, _: ReadAccess, __: Polled,
    within_days: Annotated[int, Query(ge=0, le=366, description="From today to today + this many days")] = 30,
    limit: Limit = 100, cursor: Cursor = None,
) -> Page[ClaimDeadlineOut]:
    """Unpaid invoices with no claim filed whose claim deadline falls from today to `within_days` ahead, soonest
    first: file a claim (POST /v1/claims) before each one passes."""
    after = decode_cursor(cursor, 3)
    rows = claim_deadlines(ctx, within_days)
    if after is not None:
        position = (cursor_date(after[0]).isoformat(), after[1], after[2])
        rows = [d for d in rows if tuple(_key(d)) > position]
    return Page(items=rows[:limit], next_cursor=next_cursor(rows, limit, _key))
