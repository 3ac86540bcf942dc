"""Alerts, claims and the tenant's alert settings."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Response

from app.alerts import service
from app.alerts.schemas import (
    AlertActionIn,
    AlertOut,
    AlertState,
    AlertType,
    ClaimIn,
    ClaimOut,
    SettingsIn,
    SettingsOut,
)
from app.core import public_ids
from app.core.context import ContextDep
from app.core.fields import Country, Ref
from app.core.idempotency import IdempotencyDep
from app.core.pagination import Cursor, IdPath, Limit, Page, decode_id_cursor, encode_cursor
from app.core.security import AdminAccess, IngestAccess, Principal, ReadAccess
from app.exposure.revaluation_router import ACCEPTED, accepted

router = APIRouter(prefix="/v1", tags=["alerts"])


def _row_id(ctx: ContextDep, kind: str, public_id: int) -> int:
    """The row behind a public id (in a path or a cursor): ids leave the API permuted (app/core/public_ids.py)."""
    return public_ids.decode(ctx.tenant, kind, public_id)


@router.get("/alerts", response_model=Page[AlertOut])
def list_alerts(
    ctx: ContextDep, _: ReadAccess,
    type: Annotated[AlertType | None, Query()] = None,
    state: AlertState | None = None,
    buyer_ref: Annotated[Ref | None, Query()] = None,
    country: Annotated[Country | None, Query()] = None,
    limit: Limit = 100,
    cursor: Cursor = None,
) -> Page[AlertOut]:
    """Alerts, newest first."""
    after = decode_id_cursor(cursor)
    rows = service.list_alerts(ctx, type_=type, state=state, buyer_ref=buyer_ref, country=country,
                               before_id=None if after is None else _row_id(ctx, "alerts", after), limit=limit + 1)
    next_cursor = encode_cursor([public_ids.of(rows[limit - 1])]) if len(rows) > limit else None
    return Page(items=[service.alert_out(a) for a in rows[:limit]], next_cursor=next_cursor)


@router.get("/alerts/{alert_id}", response_model=AlertOut)
def get_alert(alert_id: IdPath, ctx: ContextDep, _: ReadAccess) -> AlertOut:
    """One alert, with what raised it."""
    return service.alert_out(service.get_alert(ctx, _row_id(ctx, "alerts", alert_id)))


def _who(ctx: ContextDep, principal: Principal) -> str:
    return service.key_name(ctx, principal.key_id)


@router.post("/alerts/{alert_id}/acknowledge", response_model=AlertOut)
def acknowledge(alert_id: IdPath, ctx: ContextDep, principal: IngestAccess, idem: IdempotencyDep,
                body: AlertActionIn | None = None) -> Response:
    """Acknowledge, optionally with a note; the answer says who (the API key's name) and when."""
    if (replayed := idem.replay()) is not None:
        return replayed
    note = body.note if body else None
    return idem.respond(200, service.alert_out(
        service.acknowledge(ctx, _row_id(ctx, "alerts", alert_id), by=_who(ctx, principal), note=note)))


@router.post("/alerts/{alert_id}/resolve", response_model=AlertOut)
def resolve(alert_id: IdPath, ctx: ContextDep, principal: IngestAccess, idem: IdempotencyDep,
            body: AlertActionIn | None = None) -> Response:
    """Resolve by hand, optionally with a note (a condition that still holds is raised again by the next change
    or scan)."""
    if (replayed := idem.replay()) is not None:
        return replayed
    note = body.note if body else None
    return idem.respond(200, service.alert_out(
        service.resolve(ctx, _row_id(ctx, "alerts", alert_id), by=_who(ctx, principal), note=note)))


@router.post("/claims", response_model=ClaimOut, status_code=201)
def file_claim(body: ClaimIn, ctx: ContextDep, _: IngestAccess, idem: IdempotencyDep) -> Response:
    """File a claim for unpaid invoices.

    Declared to the insurer, they keep their cover past the claim deadline (if filed by it), their deadline
    alerts stop, and the expected indemnity is shown."""
    if (replayed := idem.replay()) is not None:
        return replayed
    return idem.respond(201, service.file_claim(ctx, body))


@router.get("/claims", response_model=Page[ClaimOut])
def list_claims(
    ctx: ContextDep, _: ReadAccess, buyer_ref: Annotated[Ref | None, Query()] = None,
    limit: Limit = 100, cursor: Cursor = None,
) -> Page[ClaimOut]:
    """Claims filed, newest first."""
    after = decode_id_cursor(cursor)
    before = None if after is None else _row_id(ctx, "claims", after)
    rows = service.list_claims(ctx, buyer_ref=buyer_ref, limit=limit + 1, before_id=before)
    next_cursor = encode_cursor([public_ids.of(rows[limit - 1])]) if len(rows) > limit else None
    return Page(items=[service.claim_out(ctx, c) for c in rows[:limit]], next_cursor=next_cursor)


@router.get("/settings", response_model=SettingsOut, tags=["settings"])
def get_settings(ctx: ContextDep, _: ReadAccess) -> SettingsOut:
    """The tenant's alert settings."""
    return service.settings_out(ctx.tenant)


@router.put("/settings", response_model=SettingsOut, tags=["settings"], responses=ACCEPTED)
def put_settings(body: SettingsIn, ctx: ContextDep, _: AdminAccess) -> Any:
    """Alert thresholds, lead times, the time zone that decides 'today', and the daily scan's hour.

    A new threshold, lead time, notice or time zone re-evaluates every buyer's alerts: beyond a few hundred
    buyers, the answer is a 202 with the background revaluation (its URL in `Location`)."""
    out, job = service.put_settings(ctx, body)
    return accepted(job) if job is not None else out
