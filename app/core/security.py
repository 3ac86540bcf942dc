"""API keys, scopes and the request's tenant.

`Authorization: Bearer <key>`. Keys are random, shown once, stored as SHA-256
hashes. Scopes nest: `read` (GET), `ingest` (read + ledger writes and credit
checks: what an ERP gets), `admin` (everything). Authenticating binds the
request's session to the key's tenant (see app.core.db), which is what scopes
every query.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from enum import StrEnum
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy import select

from app.core.db import SessionDep, bind_tenant
from app.core.errors import Forbidden, Unauthorized
from app.tenants.models import ApiKey, Tenant

KEY_PREFIX = "cw_"


class Scope(StrEnum):
    read = "read"
    ingest = "ingest"
    admin = "admin"


_RANK = {Scope.read: 1, Scope.ingest: 2, Scope.admin: 3}


def new_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


@dataclass(frozen=True)
class Principal:
    tenant: Tenant
    key_id: str
    scope: Scope

    @property
    def tenant_id(self) -> str:
        return self.tenant.id

    def allows(self, required: Scope) -> bool:
        return _RANK[self.scope] >= _RANK[required]


_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="coverwatch"'}


def authenticate(request: Request, session: SessionDep) -> Principal:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("Missing API key: send 'Authorization: Bearer <key>'.", headers=_CHALLENGE)
    row = session.execute(
        select(ApiKey, Tenant)
        .join(Tenant, Tenant.id == ApiKey.tenant_id)
        .where(ApiKey.key_hash == hash_key(token.strip()))
    ).first()
    if row is None or row.ApiKey.revoked_at is not None:
        raise Unauthorized("Unknown or revoked API key.", headers=_CHALLENGE)
    bind_tenant(session, row.Tenant.id)
    request.state.tenant_id = row.Tenant.id  # ETags include it (app.core.middleware)
    return Principal(tenant=row.Tenant, key_id=row.ApiKey.id, scope=Scope(row.ApiKey.scope))


def _require(required: Scope):  # type: ignore[no-untyped-def]
    async def dependency(principal: Annotated[Principal, Depends(authenticate)]) -> Principal:  # no I/O
        if not principal.allows(required):
            raise Forbidden(f"This API key has the '{principal.scope}' scope; '{required}' is required.")
        return principal

    # Read by app.core.openapi, which documents each operation's scope.
    dependency.required_scope = required  # type: ignore[attr-defined]
    return dependency


ReadAccess = Annotated[Principal, Depends(_require(Scope.read))]
IngestAccess = Annotated[Principal, Depends(_require(Scope.ingest))]
AdminAccess = Annotated[Principal, Depends(_require(Scope.admin))]
