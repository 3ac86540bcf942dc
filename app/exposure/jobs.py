"""Whole-portfolio exposure work outside requests: recompute and check, tenant by tenant."""

from __future__ import annotations

from sqlalchemy import select

from app.core.config import Settings
from app.core.context import system_context
from app.core.db import Database
from app.exposure import service
from app.tenants.models import Tenant


def recompute(db: Database, settings: Settings, *, tenant_id: str | None = None, check_only: bool = False) -> list[str]:
    """Recompute (or, with check_only, compare) every tenant's stored exposure; one transaction per tenant."""
    with db.session() as session:
        stmt = select(Tenant.id).order_by(Tenant.id)
        if tenant_id is not None:
            stmt = stmt.where(Tenant.id == tenant_id)
        tenant_ids = list(session.scalars(stmt))
    differences: list[str] = []
    for tid in tenant_ids:
        with db.session() as session:
            tenant = session.get(Tenant, tid)
            if tenant is None:
                continue
            ctx = system_context(session, tenant, settings)
            if check_only:
                differences += [f"tenant {tenant.id}: {line}" for line in service.check(ctx)]
                session.rollback()
            else:
                service.refresh_all(ctx)
                session.commit()
    return differences
