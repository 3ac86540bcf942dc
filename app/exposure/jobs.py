"""Whole-portfolio exposure work outside requests: recompute and check, tenant by tenant."""

from __future__ import annotations

from app.core.config import Settings
from app.core.context import Context
from app.core.db import Database
from app.exposure import service

RECOMPUTE = "recompute"


def recompute(db: Database, settings: Settings, *, tenant_id: str | None = None, check_only: bool = False) -> list[str]:
    """Recompute (or, with check_only, compare) every tenant's stored exposure; one transaction per tenant,
    under the (recompute, tenant) lock. A tenant that fails, or that another runner holds, is reported as a
    difference line rather than stopping the others."""
    from app.scheduling.jobs import for_each_tenant

    differences: list[str] = []

    def work(ctx: Context) -> bool:
        if check_only:
            differences.extend(f"tenant {ctx.tenant.id}: {line}" for line in service.check(ctx))
        else:
            service.refresh_all(ctx)
        return True

    run = for_each_tenant(db, settings, RECOMPUTE, work, [tenant_id] if tenant_id else None, commit=not check_only)
    differences += [f"tenant {t}: failed (see the log)" for t in run.failed]
    differences += [f"tenant {t}: skipped, another runner holds it" for t in run.skipped]
    return differences
