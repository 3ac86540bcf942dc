"""Cover endpoints: policies, limit decisions, country limits, FX rates."""

from __future__ import annotations

import csv
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Response

from app.core.context import ContextDep
from app.core.errors import Invalid
from app.core.fields import REF_PATTERN, Country, Currency, IsoDate
from app.core.idempotency import IdempotencyDep, RawBody
from app.core.pagination import Cursor, Limit, Page, cursor_date, decode_cursor, next_cursor
from app.core.paths import RefPath
from app.core.security import AdminAccess, ReadAccess
from app.cover import repository as repo
from app.cover import service
from app.cover.models import PolicyTerms
from app.cover.schemas import (
    BuyerLimitsOut,
    CountryLimitIn,
    CountryLimitOut,
    FxImportOut,
    FxRateOut,
    FxRatesIn,
    LimitIn,
    LimitOut,
    PolicyIn,
    PolicyOut,
)
from app.exposure.revaluation_router import ACCEPTED, accepted, revaluation_out
from app.ledger import service as ledger_service

router = APIRouter(prefix="/v1", tags=["cover"])
PolicyPath = Annotated[str, Path(pattern=REF_PATTERN)]


def _refs(ctx: ContextDep) -> dict[int, str]:
    return {p.id: p.ref for p in repo.policies(ctx.session)}


@router.put("/policies/{policy_ref}", response_model=PolicyOut, responses={201: {"model": PolicyOut}, **ACCEPTED})
def put_policy(
    policy_ref: PolicyPath, body: PolicyIn, ctx: ContextDep, _: AdminAccess, response: Response
) -> Any:
    """Create a policy or change it. Changed terms of an existing policy are an endorsement effective from
    `effective_from` (default today): deliveries made before it keep the terms they were made under, and
    `versions` keeps every version. A policy's currency cannot change once it has cover decisions.

    Only the buyers a change can move are revalued: none for an unchanged policy, those of the countries an
    endorsement of the territory or country overrides names, else all. Beyond a few hundred, the change is stored
    and answered 202 with the background revaluation (its URL in `Location`)."""
    policy, created, job = service.put_policy(ctx, policy_ref, body)
    if job is not None:
        return accepted(job)
    response.status_code = 201 if created else 200
    return service.policy_out(ctx, policy)


@router.get("/policies", response_model=Page[PolicyOut])
def list_policies(ctx: ContextDep, _: ReadAccess, limit: Limit = 100, cursor: Cursor = None) -> Page[PolicyOut]:
    """Policies by reference, with the terms in force today and their history."""
    after = decode_cursor(cursor, 1)
    rows = repo.policies_page(ctx.session, after=after[0] if after else None, limit=limit + 1)
    refs, page = _refs(ctx), rows[:limit]
    versions: dict[int, list[PolicyTerms]] = {}
    for terms in repo.terms_of(ctx.session, [p.id for p in page]):
        versions.setdefault(terms.policy_id, []).append(terms)
    return Page(items=[service.policy_out(ctx, p, refs, versions.get(p.id, [])) for p in page],
                next_cursor=next_cursor(rows, limit, lambda p: [p.ref]))


@router.get("/policies/{policy_ref}", response_model=PolicyOut)
def get_policy(policy_ref: PolicyPath, ctx: ContextDep, _: ReadAccess) -> PolicyOut:
    """The policy with the terms in force today, and their history (`versions`)."""
    return service.policy_out(ctx, service.get_policy(ctx, policy_ref))


@router.post("/policies/{policy_ref}/limits", response_model=LimitOut, status_code=201)
def add_limit(policy_ref: PolicyPath, body: LimitIn, ctx: ContextDep, _: AdminAccess, idem: IdempotencyDep) -> Response:
    """Record a cover decision. Decisions are history: a new one never overwrites an old one."""
    if (replayed := idem.replay()) is not None:
        return replayed
    decision = service.add_limit(ctx, policy_ref, body)
    policies = {p.id: p for p in repo.policies(ctx.session)}
    return idem.respond(201, service.limit_out(decision, policies, body.buyer_ref))


@router.get("/buyers/{buyer_ref:ref}/limits", response_model=BuyerLimitsOut)
def buyer_limits(
    buyer_ref: RefPath, ctx: ContextDep, _: ReadAccess,
    at: Annotated[IsoDate | None, Query(description="Limits in force on this date (default today)")] = None,
) -> BuyerLimitsOut:
    """A buyer's limits in force on a date, and every decision on it."""
    return service.buyer_limits(ctx, ledger_service.get_buyer(ctx, buyer_ref), at or ctx.today)


@router.put("/country-limits/{country}", response_model=CountryLimitOut, responses={201: {"model": CountryLimitOut}})
def put_country_limit(
    country: Annotated[Country, Path()], body: CountryLimitIn, ctx: ContextDep, _: AdminAccess, response: Response
) -> CountryLimitOut:
    """Set a policy's limit for a country."""
    row, created = service.put_country_limit(ctx, country, body)
    response.status_code = 201 if created else 200
    return service.country_limit_out(row, _refs(ctx))


@router.get("/country-limits", response_model=Page[CountryLimitOut])
def list_country_limits(
    ctx: ContextDep, _: ReadAccess, limit: Limit = 100, cursor: Cursor = None
) -> Page[CountryLimitOut]:
    """Country limits, by country."""
    after = decode_cursor(cursor, 1)
    rows = repo.country_limits_page(ctx.session, after=after[0] if after else None, limit=limit + 1)
    refs = _refs(ctx)
    return Page(items=[service.country_limit_out(r, refs) for r in rows[:limit]],
                next_cursor=next_cursor(rows, limit, lambda r: [r.country]))


@router.put("/fx-rates", response_model=FxImportOut, responses=ACCEPTED)
def put_fx_rates(body: FxRatesIn, ctx: ContextDep, _: AdminAccess) -> Any:
    """Store rates (one `base` is worth `rate` `quote`). Exposure converts at the latest rate on or before
    the valuation date.

    Only the buyers whose figures convert with a rate that moved are revalued (all of them when it is a policy's
    or the tenant's currency); beyond a few hundred, the answer is a 202 with the background revaluation."""
    stored, job = service.put_rates(ctx, body.rates)
    if job is not None:
        return accepted(job)
    return FxImportOut(stored=stored, days=len({r.date for r in body.rates}),
                       currencies=sorted({r.quote for r in body.rates} | {r.base for r in body.rates}))


@router.post(
    "/fx-rates/ecb", response_model=FxImportOut, responses=ACCEPTED,
    openapi_extra={"requestBody": {"required": True, "content": {"text/csv": {"schema": {"type": "string"}}}}},
)
def import_ecb(ctx: ContextDep, _: AdminAccess, idem: IdempotencyDep, raw: RawBody) -> Response:
    """Import the ECB euro reference rates CSV (eurofxref.csv or eurofxref-hist.csv), sent as text/csv.

    Revalues as `PUT /v1/fx-rates` does: a 202 with the background revaluation when many buyers are moved."""
    if (replayed := idem.replay()) is not None:
        return replayed
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise Invalid("The CSV must be UTF-8 text.", field="/csv") from exc
    try:
        imported, job = service.import_ecb_csv(ctx, text)
    except csv.Error as exc:
        raise Invalid(f"The CSV cannot be read: {exc}.", field="/csv") from exc
    if job is not None:
        idem.respond(202, revaluation_out(job))  # a replay gets the same body (its href), without Location
        return accepted(job)
    return idem.respond(200, imported)


@router.get("/fx-rates", response_model=Page[FxRateOut])
def list_fx_rates(
    ctx: ContextDep, _: ReadAccess, base: Annotated[Currency | None, Query()] = None,
    quote: Annotated[Currency | None, Query()] = None, on: Annotated[IsoDate | None, Query()] = None,
    limit: Limit = 100, cursor: Cursor = None,
) -> Page[FxRateOut]:
    """FX rates stored, newest day first, then by currency pair."""
    after = decode_cursor(cursor, 3)
    rows = repo.rates_page(ctx.session, base=base, quote=quote, on=on, limit=limit + 1,
                           after=(cursor_date(after[0]), after[1], after[2]) if after else None)
    items = [FxRateOut(date=r.day, base=r.base, quote=r.quote, rate=r.rate.normalize()) for r in rows[:limit]]
    return Page(items=items,
                next_cursor=next_cursor(rows, limit, lambda r: [r.day.isoformat(), r.base, r.quote]))

