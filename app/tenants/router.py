"""API keys: issue, list, revoke (admin scope)."""

from __future__ import annotations

from fastapi import APIRouter, Response

from app.core.context import ContextDep
from app.core.db import SessionDep
from app.core.idempotency import IdempotencyDep
from app.core.pagination import Cursor, Limit, Page, cursor_datetime, decode_cursor, next_cursor
from app.core.security import AdminAccess, ReadAccess, Scope
from app.tenants import service
from app.tenants.models import ApiKey
from app.tenants.schemas import ApiKeyCreated, ApiKeyIn, ApiKeyOut, MeOut

router = APIRouter(prefix="/v1/api-keys", tags=["api keys"])


def _out(row: ApiKey) -> ApiKeyOut:
    return ApiKeyOut(
        id=row.id, name=row.name, scope=Scope(row.scope), prefix=row.prefix,
        created_at=row.created_at, revoked_at=row.revoked_at,
    )


@router.post("", response_model=ApiKeyCreated, status_code=201)
def issue_key(body: ApiKeyIn, session: SessionDep, _: AdminAccess, idem: IdempotencyDep) -> Response:
    """Issue a key. The key is in this response only: it is stored hashed, and a replay omits it."""
    if (replayed := idem.replay()) is not None:
        return replayed
    row, key = service.issue_key(session, body.name, body.scope)
    out = _out(row)
    # A replay must not reveal the key again: it gets the key's record without the secret.
    return idem.respond(201, ApiKeyCreated(**out.model_dump(), key=key), replay_as=out)


@router.get("", response_model=Page[ApiKeyOut])
def list_keys(session: SessionDep, _: AdminAccess, limit: Limit = 100, cursor: Cursor = None) -> Page[ApiKeyOut]:
    """The tenant's API keys, oldest first (never the keys themselves)."""
    after = decode_cursor(cursor, 2)
    rows = service.list_keys(session, after=(cursor_datetime(after[0]), after[1]) if after else None,
                             limit=limit + 1)
    return Page(items=[_out(r) for r in rows[:limit]],
                next_cursor=next_cursor(rows, limit, lambda r: [r.created_at.isoformat(), r.id]))


@router.delete("/{key_id}", response_model=ApiKeyOut)
def revoke_key(key_id: str, session: SessionDep, _: AdminAccess) -> ApiKeyOut:
    """Revoke an API key: refused from the next request on."""
    return _out(service.revoke_key(session, key_id))


me_router = APIRouter(prefix="/v1", tags=["api keys"])


@me_router.get("/me", response_model=MeOut)
def me(ctx: ContextDep, principal: ReadAccess) -> MeOut:
    """Who this key is: its name and scope, and the tenant it works for (what a console shows and allows)."""
    key = service.get_key(ctx.session, principal.key_id)
    t = ctx.tenant
    return MeOut(tenant_id=t.id, tenant_name=t.name, currency=t.currency, locale=t.locale, timezone=t.timezone,
                 today=ctx.today, key_id=key.id, key_name=key.name, scope=Scope(key.scope))
