"""The periodic jobs. Each is idempotent: run twice, it changes nothing the second time.

- dispatch: send due webhook deliveries (shared between replicas with SKIP LOCKED).
- revalue: apply date-driven changes (a claim deadline passing, a limit expiring) as
  soon as a tenant's day has turned: recompute its buyers (alerts follow).
- daily_scan: at each tenant's hour (and at start-up, so a restart never skips a day):
  recompute every buyer, raise claim-deadline and limit-expiry alerts, snapshot each
  buyer's exposure for the history, purge expired idempotency records.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import datetime
from typing import Any, cast
from zoneinfo import ZoneInfo

from sqlalchemy import CursorResult, delete, func, insert, literal, select

from app.core.clock import utcnow
from app.core.config import Settings
from app.core.context import Context, system_context
from app.core.db import Database
from app.core.idempotency import purge_expired
from app.exposure import service as exposure
from app.exposure.models import BuyerExposure, ExposureSnapshot
from app.scheduling.locks import single_runner
from app.scheduling.models import JobRun
from app.tenants.models import Tenant
from app.webhooks.dispatcher import dispatch_pending

log = logging.getLogger("coverwatch.jobs")
DAILY_SCAN = "daily_scan"


def _tenant_ids(db: Database, only: list[str] | None = None) -> list[str]:
    with db.session() as session:
        stmt = select(Tenant.id).order_by(Tenant.id)
        if only is not None:
            stmt = stmt.where(Tenant.id.in_(only))
        return list(session.scalars(stmt))


def tenant_contexts(db: Database, settings: Settings, only: list[str] | None = None) -> Iterator[Context]:
    """Each tenant in turn, with a session of its own bound to it (the caller commits)."""
    for tenant_id in _tenant_ids(db, only):
        with db.session() as session:
            tenant = session.get(Tenant, tenant_id)
            if tenant is not None:
                yield system_context(session, tenant, settings)


def dispatch(db: Database, settings: Settings) -> int:
    return dispatch_pending(db, settings)


def revalue(db: Database, settings: Settings, tenant_ids: list[str] | None = None) -> int:
    """Recompute the tenants whose stored exposure was valued before their today. Returns how many."""
    done = 0
    with single_runner(db, "revalue") as mine:
        if not mine:
            return 0
        for ctx in tenant_contexts(db, settings, tenant_ids):
            oldest = ctx.session.scalar(select(func.min(BuyerExposure.valued_on)))
            if oldest is not None and oldest < ctx.today:
                exposure.refresh_all(ctx)
                ctx.session.commit()
                done += 1
    return done


def snapshot(ctx: Context) -> int:
    """Today's exposure of every buyer, kept as history (replaces today's snapshot if taken again)."""
    session = ctx.session
    session.execute(delete(ExposureSnapshot).where(ExposureSnapshot.day == ctx.today))
    overdue = (BuyerExposure.overdue_1_30 + BuyerExposure.overdue_31_60 + BuyerExposure.overdue_61_90
               + BuyerExposure.overdue_over_90)
    columns = ["tenant_id", "buyer_id", "day", "currency", "outstanding", "overdue", "covered_primary",
               "covered_top_up", "uncovered", "indemnifiable", "utilisation", "status"]
    source = select(
        BuyerExposure.tenant_id, BuyerExposure.buyer_id, literal(ctx.today, ExposureSnapshot.day.type),
        BuyerExposure.currency, BuyerExposure.outstanding, overdue, BuyerExposure.covered_primary,
        BuyerExposure.covered_top_up, BuyerExposure.uncovered, BuyerExposure.indemnifiable,
        BuyerExposure.utilisation, BuyerExposure.status,
    ).where(BuyerExposure.tenant_id == ctx.tenant.id)
    result = session.execute(insert(ExposureSnapshot).from_select(columns, source))
    return cast(CursorResult[Any], result).rowcount or 0


def daily_scan(db: Database, settings: Settings, *, force: bool = False, now: datetime | None = None,
               tenant_ids: list[str] | None = None) -> list[str]:
    """Run the daily scan for every tenant whose scan hour has come today and who has not had it yet."""
    scanned: list[str] = []
    with single_runner(db, DAILY_SCAN) as mine:
        if not mine:
            return scanned
        for ctx in tenant_contexts(db, settings, tenant_ids):
            session, tenant = ctx.session, ctx.tenant
            local = (now or utcnow()).astimezone(ZoneInfo(tenant.timezone))
            due = settings.today is not None or local.hour >= tenant.daily_scan_hour
            ran = session.scalar(select(JobRun.id).where(JobRun.job == DAILY_SCAN, JobRun.day == ctx.today))
            if not force and (ran is not None or not due):
                continue
            exposure.refresh_all(ctx)
            snapshot(ctx)
            purge_expired(session, settings.idempotency_ttl_hours)
            if ran is None:
                session.add(JobRun(job=DAILY_SCAN, day=ctx.today))
            session.commit()
            scanned.append(tenant.id)
            log.info("daily scan done for tenant %s (%s)", tenant.id, ctx.today)
    return scanned
