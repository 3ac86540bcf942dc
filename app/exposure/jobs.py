"""Whole-portfolio exposure work outside requests: recompute and check, tenant by tenant."""

from __future__ import annotations

from app.core.config import Settings
from app.core.db import Database
from app.exposure import service


def recompute(db: Database, settings: Settings, *, tenant_id: str | None = None, check_only: bool = False) -> list[str]:
    """Recompute (or, with check_only, compare) every tenant's stored exposure; one transaction per tenant."""
    from app.scheduling.jobs import tenant_contexts

    differences: list[str] = []
    for ctx in tenant_contexts(db, settings, [tenant_id] if tenant_id else None):
        if check_only:
            differences += [f"tenant {ctx.tenant.id}: {line}" for line in service.check(ctx)]
            ctx.session.rollback()
        else:
            service.refresh_all(ctx)
            ctx.session.commit()
    return differences
