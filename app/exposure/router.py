"""Exposure endpoints for dashboards (read scope) and the pre-shipment credit check.

Every GET here answers with an ETag built from the tenant's exposure version,
known before any work: a poll with `If-None-Match` and nothing changed is a 304.
"""

from __future__ import annotations

import hashlib
from decimal import Decimal
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request, Response

from app.core.context import ContextDep
from app.core.errors import Invalid, NotFound
from app.core.fields import MONEY_STORAGE_MAX, Country, DecimalStr
from app.core.idempotency import IdempotencyDep
from app.core.pagination import Cursor, Limit, Page, decode_cursor, encode_cursor
from app.core.paths import RefPath
from app.core.security import IngestAccess, ReadAccess
from app.exposure import queries, service
from app.exposure import repository as repo
from app.exposure.repository import SORTABLE
from app.exposure.schemas import (
    BuyerExposureDetail,
    BuyerExposureOut,
    BuyerStatus,
    CountryExposureOut,
    CreditCheckIn,
    CreditCheckOut,
    InvoiceCoverOut,
    PortfolioOut,
)

router = APIRouter(prefix="/v1", tags=["exposure"])
SortKey = Literal[tuple([*SORTABLE, *(f"-{k}" for k in SORTABLE)])]  # type: ignore[valid-type]

NOT_MODIFIED: dict[int | str, dict[str, Any]] = {
    304: {"description": "Nothing changed since the ETag sent in If-None-Match"}}


class NotModified(Exception):
    def __init__(self, etag: str) -> None:
        self.etag = etag


def not_modified_response(exc: NotModified) -> Response:
    return Response(status_code=304, headers={"ETag": exc.etag})


async def poll_etag(ctx: ContextDep, request: Request, response: Response) -> str:
    """The tag of an exposure read, known before any work: the tenant, its exposure version, the URL and the day.

    A matching If-None-Match ends the request with a 304 here. No I/O: run on the event loop."""
    key = f"{ctx.tenant.id}|{request.url.path}?{request.url.query}|{ctx.today.isoformat()}"
    etag = f'W/"x{ctx.tenant.exposure_version}-{hashlib.sha256(key.encode()).hexdigest()[:16]}"'
    sent = request.headers.get("if-none-match")
    if sent is not None and etag in [t.strip() for t in sent.split(",")]:
        raise NotModified(etag)
    response.headers["ETag"] = etag
    return etag


Polled = Annotated[str, Depends(poll_etag)]


@router.get("/exposure", response_model=PortfolioOut, responses=NOT_MODIFIED)
def portfolio(ctx: ContextDep, _: ReadAccess, __: Polled) -> Any:
    """Portfolio totals in the tenant's currency, and buyers counted by status."""
    return queries.portfolio(ctx)


@router.get("/exposure/buyers", response_model=Page[BuyerExposureOut], responses=NOT_MODIFIED)
def exposure_buyers(
    ctx: ContextDep, _: ReadAccess, __: Polled,
    country: Annotated[Country | None, Query()] = None,
    status: BuyerStatus | None = None,
    min_uncovered: Annotated[DecimalStr | None, Query()] = None,
    sort: Annotated[SortKey, Query(  # type: ignore[valid-type]
        description="An amount, utilisation or buyer_ref; prefix '-' for descending")] = "buyer_ref",
    limit: Limit = 100,
    cursor: Cursor = None,
) -> Any:
    """One row per buyer, amounts in its cover currency."""
    name = str(sort).removeprefix("-")
    after: Any = decode_cursor(cursor, 2)
    if after is not None and name != "buyer_ref":
        try:  # an amount or a utilisation, as the previous page wrote it
            after = (Decimal(after[0]), after[1])
        except ArithmeticError as exc:
            raise Invalid("cursor: not a cursor this endpoint returned", field="/cursor") from exc
        if not after[0].is_finite() or abs(after[0]) > MONEY_STORAGE_MAX:
            raise Invalid("cursor: not a cursor this endpoint returned", field="/cursor")
    rows = queries.buyers_page(ctx, country=country, status=status, min_uncovered=min_uncovered, sort=name,
                               descending=str(sort).startswith("-"), after=after, limit=limit + 1)
    items = [queries.buyer_out(r) for r in rows[:limit]]
    next_cursor = None
    if len(rows) > limit:
        last = rows[limit - 1]
        value = getattr(last, name) if name != "utilisation" else (last.utilisation if last.utilisation is not None
                                                                     else Decimal(-1))
        next_cursor = encode_cursor([str(value), last.buyer_ref])
    return Page(items=items, next_cursor=next_cursor)


@router.get("/exposure/buyers/{buyer_ref:ref}", response_model=BuyerExposureDetail, responses=NOT_MODIFIED)
def exposure_buyer(
    buyer_ref: RefPath, ctx: ContextDep, _: ReadAccess, __: Polled,
    invoices_limit: Annotated[int, Query(ge=1, le=1000, description="Invoices on this first page")] = 100,
) -> Any:
    """A buyer's exposure invoice by invoice: aging, cover by layer, reasons, limits in force. The invoices come
    a page at a time (a large buyer has tens of thousands): the first page here, the next ones from
    `/v1/exposure/buyers/{buyer_ref}/invoices`."""
    detail = queries.buyer_detail(ctx, buyer_ref, limit=invoices_limit)
    if detail is None:
        raise NotFound(f"No buyer '{buyer_ref}'.")
    return detail


@router.get("/exposure/buyers/{buyer_ref:ref}/invoices", response_model=Page[InvoiceCoverOut],
            responses=NOT_MODIFIED)
def exposure_buyer_invoices(
    buyer_ref: RefPath, ctx: ContextDep, _: ReadAccess, __: Polled, limit: Limit = 100, cursor: Cursor = None,
) -> Any:
    """A buyer's open invoices with their cover by layer, in walk order (delivery date, then reference), a page
    at a time."""
    row = repo.row_by_ref(ctx.session, buyer_ref)
    if row is None:
        raise NotFound(f"No buyer '{buyer_ref}'.")
    return queries.buyer_invoices(ctx, row, cursor=decode_cursor(cursor, 2), limit=limit)


@router.get("/exposure/countries", response_model=list[CountryExposureOut], responses=NOT_MODIFIED)
def exposure_countries(ctx: ContextDep, _: ReadAccess, __: Polled) -> Any:
    """Per-country totals in the tenant's currency, held against the country limits."""
    return queries.countries(ctx)


@router.post("/credit-checks", response_model=CreditCheckOut)
def credit_check(body: CreditCheckIn, ctx: ContextDep, _: IngestAccess, idem: IdempotencyDep) -> Response:
    """Before shipping: what would a new invoice be covered by? Changes nothing."""
    if (replayed := idem.replay()) is not None:
        return replayed
    return idem.respond(200, service.credit_check(ctx, body))
