"""Tenants and API keys."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session

from app.core.clock import utcnow
from app.core.db import bind_tenant
from app.core.errors import NotFound
from app.core.security import Scope, hash_key, new_key
from app.tenants.models import ApiKey, Tenant


def create_tenant(session: Session, name: str, currency: str) -> tuple[Tenant, str]:
    """A new tenant and its first admin key (returned in clear once)."""
    tenant = Tenant(id=str(uuid.uuid4()), name=name, currency=currency, exposure_version=0)
    session.add(tenant)
    session.flush()
    bind_tenant(session, tenant.id)
    _, key = issue_key(session, "admin (created with the tenant)", Scope.admin)
    return tenant, key


def issue_key(session: Session, name: str, scope: Scope) -> tuple[ApiKey, str]:
    key = new_key()
    row = ApiKey(id=str(uuid.uuid4()), name=name, scope=scope.value, prefix=key[:10], key_hash=hash_key(key))
    session.add(row)
    session.flush()
    return row, key


def list_keys(session: Session, *, after: tuple[datetime, str] | None, limit: int) -> list[ApiKey]:
    """Oldest first; `after` is the (created_at, id) of the previous page's last key."""
    stmt = select(ApiKey).order_by(ApiKey.created_at, ApiKey.id).limit(limit)
    if after is not None:
        at, id_ = after
        stmt = stmt.where(or_(ApiKey.created_at > at, and_(ApiKey.created_at == at, ApiKey.id > id_)))
    return list(session.scalars(stmt))


def revoke_key(session: Session, key_id: str) -> ApiKey:
    row = session.scalars(select(ApiKey).where(ApiKey.id == key_id)).first()
    if row is None:
        raise NotFound(f"No API key '{key_id}'.")
    if row.revoked_at is None:
        row.revoked_at = utcnow()
    return row


def get_key(session: Session, key_id: str) -> ApiKey:
    row = session.scalars(select(ApiKey).where(ApiKey.id == key_id)).first()
    if row is None:  # the key authenticated this very request
        raise LookupError(key_id)
    return row
