"""Report and export endpoints. JSON by default (reports); `Accept: text/csv` or `?format=csv` streams CSV,
the spreadsheet type or `?format=xlsx` an Excel file. HTTP only: the work is in service.py.

A streamed body is sent after the request's unit of work has closed: its rows are read in a session of
their own, opened when the body starts and bound to the same tenant.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request, Response

from app.core.context import Context, ContextDep
from app.core.fields import REF_PATTERN, Country, IsoDate
from app.core.security import ReadAccess
from app.reports import formats, service
from app.reports.schemas import (
    AgingOut,
    AgingRow,
    InsuredReceivableRow,
    InsuredReceivablesOut,
    OverdueDeclarationRow,
    OverdueDeclarationsOut,
    PaymentBehaviourOut,
    PaymentBehaviourRow,
    TopUpNeedRow,
    TopUpNeedsOut,
    TurnoverOut,
    TurnoverRow,
)
from app.tenants.models import Tenant

router = APIRouter(prefix="/v1", tags=["reports"])

FormatQuery = Annotated[
    Literal["json", "csv", "xlsx"] | None,
    Query(alias="format", description="Overrides the Accept header: json, csv or xlsx"),
]
AsOf = Annotated[IsoDate | None, Query(description="Default: today")]
Produce = Callable[[Context], Iterator[dict[str, Any]]]


def _file(request: Request, ctx: Context, fmt: formats.Format, name: str, columns: list[str],
          produce: Produce) -> Response:
    db, tenant_id, today, settings = request.app.state.db, ctx.tenant.id, ctx.today, ctx.settings

    def rows() -> Iterator[dict[str, Any]]:
        with db.read_session(tenant_id) as session:  # deferred: never takes the SQLite write lock
            tenant = session.get(Tenant, tenant_id)
            yield from produce(Context(session, tenant, today, settings))

    return formats.file_response(fmt, f"{name}-{today.isoformat()}", columns, rows)


@router.get("/reports/aging", response_model=AgingOut, responses=formats.FILE_RESPONSES)
def aging(request: Request, ctx: ContextDep, _: ReadAccess, as_of: AsOf = None,
          country: Annotated[Country | None, Query()] = None, fmt: FormatQuery = None) -> Any:
    """Open balances per buyer in the buckets of DOMAIN.md rule 5 (not due, 1-30, 31-60, 61-90, over 90 days
    past the due date on `as_of`), with totals per currency."""
    day = as_of or ctx.today
    if (f := formats.negotiate(request, fmt)) != "json":
        return _file(request, ctx, f, "aging", service.columns(AgingRow),
                     lambda c: service.aging_rows(c, day, country))
    return service.aging(ctx, day, country)


@router.get("/reports/top-up-needs", response_model=TopUpNeedsOut, responses=formats.FILE_RESPONSES)
def top_up_needs(request: Request, ctx: ContextDep, _: ReadAccess,
                 days: Annotated[int, Query(ge=1, le=3660)] = 90, fmt: FormatQuery = None) -> Any:
    """From the daily snapshots of the last `days` days, per buyer: peak outstanding, the limits in force,
    the peak the primary left uncovered, the peak uncovered, the share of days above the primary, and a
    suggested Top Up limit; biggest first, with the portfolio totals. The evidence a broker takes to a Top Up
    insurer."""
    if (f := formats.negotiate(request, fmt)) != "json":
        return _file(request, ctx, f, "top-up-needs", service.columns(TopUpNeedRow),
                     lambda c: (r.model_dump() for r in service.top_up_needs(c, days).rows))
    return service.top_up_needs(ctx, days)


@router.get("/reports/turnover", response_model=TurnoverOut, responses=formats.FILE_RESPONSES)
def turnover(
    request: Request, ctx: ContextDep, _: ReadAccess,
    policy_ref: Annotated[str, Query(pattern=REF_PATTERN)],
    from_: Annotated[IsoDate | None, Query(alias="from", description="Default: the policy's start")] = None,
    to: Annotated[IsoDate | None, Query(description="Default: the policy's end")] = None,
    fmt: FormatQuery = None,
) -> Any:
    """The insured turnover to declare for a policy and period, per month and country: invoices delivered to
    buyers inside the policy territory, less credit notes, in the policy currency; with the estimated premium
    when the policy has a premium rate."""
    policy = service.get_policy(ctx, policy_ref)
    start, end = service.turnover_period(policy, from_, to)
    if (f := formats.negotiate(request, fmt)) != "json":
        return _file(request, ctx, f, "turnover", service.columns(TurnoverRow),
                     lambda c: service.turnover_rows(c, policy_ref, start, end))
    return service.turnover(ctx, policy, start, end)


@router.get("/reports/overdue-declarations", response_model=OverdueDeclarationsOut,
            responses=formats.FILE_RESPONSES)
def overdue_declarations(request: Request, ctx: ContextDep, _: ReadAccess, as_of: AsOf = None,
                         fmt: FormatQuery = None) -> Any:
    """Unpaid invoices to declare to the insurer now: past the policy's declaration threshold
    (`overdue_declaration_days`, default the claim deadline less 30 days) with no claim filed, each with its
    claim deadline."""
    day = as_of or ctx.today
    if (f := formats.negotiate(request, fmt)) != "json":
        return _file(request, ctx, f, "overdue-declarations", service.columns(OverdueDeclarationRow),
                     lambda c: service.overdue_declaration_rows(c, day))
    return service.overdue_declarations(ctx, day)


@router.get("/reports/insured-receivables", response_model=InsuredReceivablesOut,
            responses=formats.FILE_RESPONSES)
def insured_receivables(request: Request, ctx: ContextDep, _: ReadAccess, as_of: AsOf = None,
                        fmt: FormatQuery = None) -> Any:
    """Per buyer and open invoice: what each layer covers and at which indemnity rate. The schedule a bank or a
    factor asks for before lending against insured receivables. Another `as_of` than today values today's open
    invoices on that date."""
    day = as_of or ctx.today
    if (f := formats.negotiate(request, fmt)) != "json":
        return _file(request, ctx, f, "insured-receivables", service.columns(InsuredReceivableRow),
                     lambda c: service.insured_receivable_rows(c, day))
    return service.insured_receivables(ctx, day)


@router.get("/reports/payment-behaviour", response_model=PaymentBehaviourOut, responses=formats.FILE_RESPONSES)
def payment_behaviour(request: Request, ctx: ContextDep, _: ReadAccess,
                      days: Annotated[int, Query(ge=1, le=3660)] = 365, fmt: FormatQuery = None) -> Any:
    """Per buyer, the invoices paid in full in the last `days` days: days beyond terms (average, and weighted by
    amount) and the share paid late."""
    if (f := formats.negotiate(request, fmt)) != "json":
        start, end = service.window(ctx, days)
        return _file(request, ctx, f, "payment-behaviour", service.columns(PaymentBehaviourRow),
                     lambda c: service.payment_behaviour_rows(c, start, end))
    return service.payment_behaviour(ctx, days)


EXPORTS: dict[str, tuple[list[str], Produce]] = {
    "buyers": (service.BUYER_COLUMNS, service.buyer_export_rows),
    "invoices": (service.INVOICE_COLUMNS, service.invoice_export_rows),
    "alerts": (service.ALERT_COLUMNS, service.alert_export_rows),
    "limits": (service.LIMIT_COLUMNS, service.limit_export_rows),
}


@router.get("/exports/{kind}", responses={200: {"content": {
    formats.CSV: {"schema": {"type": "string"}}, formats.XLSX: {"schema": {"type": "string", "format": "binary"}}},
    "description": "CSV by default; Excel with `Accept: " + formats.XLSX + "` or `?format=xlsx`"}},
    response_class=Response)
def export(request: Request, kind: Literal["buyers", "invoices", "alerts", "limits"], ctx: ContextDep,
           _: ReadAccess, fmt: Annotated[Literal["csv", "xlsx"] | None, Query(alias="format")] = None) -> Response:
    """Every row, streamed: the buyers' exposure, the invoices and credit notes with their cover, the alerts, the
    limit decisions."""
    f = formats.negotiate(request, fmt, default="csv")
    columns, produce = EXPORTS[kind]
    return _file(request, ctx, "csv" if f == "json" else f, kind, columns, produce)
