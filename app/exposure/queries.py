"""The read side of exposure: what dashboards get, built from the stored rows only."""

from __future__ import annotations

from collections import Counter
from datetime import date
from decimal import Decimal
from typing import Any

from app.core.context import Context
from app.core.errors import Invalid
from app.core.money import quantize
from app.core.pagination import Page, encode_cursor
from app.cover import engine
from app.cover import repository as cover_repo
from app.exposure import repository as repo
from app.exposure.models import BuyerExposure, InvoiceCover
from app.exposure.schemas import (
    BuyerExposureDetail,
    BuyerExposureOut,
    CountryExposureOut,
    InvoiceCoverOut,
    LimitInForceOut,
    PortfolioOut,
    StopPeriodOut,
)

ZERO = Decimal(0)


def buyer_out(row: BuyerExposure) -> BuyerExposureOut:
    c = row.currency
    amounts = {f: quantize(getattr(row, f), c) for f in engine.AMOUNT_FIELDS}
    return BuyerExposureOut(
        buyer_ref=row.buyer_ref, name=row.buyer_name, country=row.country, currency=c, valued_on=row.valued_on,
        utilisation=row.utilisation.normalize() if row.utilisation is not None else None,
        status=row.status,  # type: ignore[arg-type]
        errors=list(row.errors), stale=bool(row.stale),
        **amounts,
    )


def buyer_detail(ctx: Context, buyer_ref: str, *, limit: int) -> BuyerExposureDetail | None:
    row = repo.row_by_ref(ctx.session, buyer_ref)
    if row is None:
        return None
    d = row.detail
    page = buyer_invoices(ctx, row, cursor=None, limit=limit)
    count = d.get("invoice_count")
    return BuyerExposureDetail(
        **buyer_out(row).model_dump(),
        stop_of_cover_from=d.get("stop_of_cover_from"),
        stop_periods=[StopPeriodOut(**x) for x in d.get("stop_periods", [])],
        missing_rates=d.get("missing_rates", []),
        limits=[LimitInForceOut(**x) for x in d.get("limits", [])],
        invoice_count=count if count is not None else repo.cover_count(ctx.session, row.buyer_id),
        invoices=page.items, invoices_next_cursor=page.next_cursor,
    )


def cover_out(c: InvoiceCover) -> InvoiceCoverOut:
    q = c.currency
    return InvoiceCoverOut(
        invoice_ref=c.invoice_ref, issue_date=c.issue_date, due_date=c.due_date, claim_deadline=c.claim_deadline,
        claim_filed_on=c.claim_filed_on, open_balance=quantize(c.open_balance, q),
        covered_primary=quantize(c.covered_primary, q), covered_top_up=quantize(c.covered_top_up, q),
        uncovered=quantize(c.uncovered, q), indemnifiable=quantize(c.indemnifiable, q),
        reason=c.reason,  # type: ignore[arg-type]
        original_currency=c.original_currency,
        original_open_balance=quantize(c.original_open_balance, c.original_currency)
        if c.original_open_balance is not None and c.original_currency else None,
        primary_policy_ref=c.primary_policy_ref,
    )


def buyer_invoices(ctx: Context, row: BuyerExposure, *, cursor: list[Any] | None,
                   limit: int) -> Page[InvoiceCoverOut]:
    """A page of the buyer's invoices in walk order (delivery date, then reference), after the cursor's key:
    an index range scan of the buyer's invoice covers."""
    after: tuple[date, str] | None = None
    if cursor is not None:
        try:
            after = (date.fromisoformat(cursor[0]), cursor[1])
        except (TypeError, ValueError) as exc:
            raise Invalid("cursor: not a cursor this endpoint returned", field="/cursor") from exc
        if not isinstance(after[1], str):
            raise Invalid("cursor: not a cursor this endpoint returned", field="/cursor")
    rows = repo.covers_page(ctx.session, row.buyer_id, after=after, limit=limit + 1)
    chunk = rows[:limit]
    more = len(rows) > limit
    return Page(items=[cover_out(c) for c in chunk],
                next_cursor=encode_cursor([chunk[-1].issue_date.isoformat(), chunk[-1].invoice_ref]) if more else None)


def buyers_page(ctx: Context, **kwargs: Any) -> list[BuyerExposure]:
    after = kwargs.pop("after")
    if after is not None:
        value, ref = after
        if kwargs["sort"] != "buyer_ref":
            try:
                value = Decimal(value)
            except ArithmeticError:
                value = None
            if value is None or not isinstance(ref, str):
                raise Invalid("cursor: not a cursor this endpoint returned", field="/cursor")
        after = (value, ref)
    return repo.buyers_page(ctx.session, after=after, **kwargs)


def _to_base(ctx: Context, rates: engine.Rates, amount: Decimal, currency: str, errors: list[str]) -> Decimal | None:
    converted = rates.convert(amount, currency, ctx.tenant.currency)
    if converted is None:
        message = f"missing FX rate {currency}/{ctx.tenant.currency} on or before {ctx.today.isoformat()}"
        if message not in errors:
            errors.append(message)
    return converted


def portfolio(ctx: Context) -> PortfolioOut:
    session = ctx.session
    rates = engine.Rates(cover_repo.rates_on(session, ctx.today))
    totals = dict.fromkeys(repo.SUMMED, ZERO)
    by_status: Counter[str] = Counter({s: 0 for s in ("ok", "above_primary", "above_cover", "no_cover", "incomplete")})
    errors: list[str] = []
    buyers = 0
    for currency, status, count, sums in repo.totals_by_currency_and_status(session):
        buyers += count
        by_status[status] += count
        for f, amount in sums.items():
            converted = _to_base(ctx, rates, amount, currency, errors) if amount else ZERO
            if converted is not None:
                totals[f] += converted
    for row_errors in repo.errors_present(session):
        for e in row_errors:
            if e not in errors:
                errors.append(e)
    c = ctx.tenant.currency
    return PortfolioOut(
        currency=c, valued_on=repo.last_valued_on(session), buyers=buyers, buyers_by_status=dict(by_status),
        errors=errors, stale_buyers=repo.stale_buyers(session), **{f: quantize(v, c) for f, v in totals.items()},
    )


def countries(
    ctx: Context, only: set[str] | None = None, rates: engine.Rates | None = None
) -> list[CountryExposureOut]:
    """Per-country totals in the tenant's currency; `only` restricts to some countries. `rates`: today's, when
    the caller has them already (a refresh)."""
    session = ctx.session
    rates = rates or engine.Rates(cover_repo.rates_on(session, ctx.today))
    c = ctx.tenant.currency
    fields = ("outstanding", "covered_primary", "covered_top_up", "uncovered", "indemnifiable")
    acc: dict[str, dict[str, Any]] = {}
    errors: dict[str, list[str]] = {}
    for country, row_errors in repo.errors_by_country(session, only):
        for e in row_errors:
            if e not in errors.setdefault(country, []):
                errors[country].append(e)
    for country, currency, count, sums in repo.totals_by_country(session, only):
        slot = acc.setdefault(country, {"buyers": 0, **dict.fromkeys(fields, ZERO)})
        slot["buyers"] += count
        for f in fields:
            converted = _to_base(ctx, rates, sums[f], currency, errors.setdefault(country, [])) if sums[f] else ZERO
            slot[f] += converted or ZERO
    limits = {row.country: row for row in cover_repo.country_limits(session) if only is None or row.country in only}
    out = []
    for country in sorted(set(acc) | set(limits)):
        slot = acc.get(country, {"buyers": 0, **dict.fromkeys(fields, ZERO)})
        limit_row = limits.get(country)
        mine = errors.setdefault(country, [])
        limit = _to_base(ctx, rates, limit_row.amount, limit_row.currency, mine) if limit_row else None
        outstanding = slot["outstanding"]
        out.append(CountryExposureOut(
            country=country, currency=c, buyers=slot["buyers"], **{f: quantize(slot[f], c) for f in fields},
            country_limit=quantize(limit, c) if limit is not None else None,
            headroom=quantize(limit - outstanding, c) if limit is not None else None,
            above_limit=limit is not None and outstanding > limit, errors=mine,
        ))
    return out
