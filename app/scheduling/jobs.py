"""The periodic jobs. Each is idempotent: run twice, it changes nothing the second time.

Tenant by tenant (`for_each_tenant`): each tenant's work is one transaction under a transaction-level advisory
lock keyed by job and tenant (app/scheduling/locks.py), so replicas share the tenants and never do one tenant's
job twice at once; a tenant that fails is rolled back, logged and counted, and the others go on.

- dispatch: send due webhook deliveries (shared between replicas with SKIP LOCKED).
- revaluations: run the background revaluations tenant-wide changes queued (claimed with SKIP LOCKED, in
  committed chunks, resumable: app/exposure/revaluation.py).
- revalue: apply date-driven changes (a claim deadline passing, a limit expiring) as
  soon as a tenant's day has turned: recompute its buyers valued on an earlier day (alerts follow).
- daily_scan: at each tenant's hour (and at start-up, so a restart never skips a day):
  recompute every buyer, raise claim-deadline and limit-expiry alerts, snapshot each
  buyer's exposure for the history, purge expired idempotency records and old finished revaluations.

The walks of revalue and daily_scan are queued as background revaluations in the tenant's transaction, then run
by the caller in committed chunks (`_walk`); any other free runner (another replica's worker) helps, so a
tenant's walk is shared instead of done whole by one process (a million open invoices: 123 s in one process).
The daily scan's snapshot is taken by the runner that finishes its walk.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import false, select

from app.core.clock import utcnow
from app.core.config import Settings
from app.core.context import Context, system_context
from app.core.db import Database
from app.core.idempotency import purge_expired
from app.exposure import revaluation
from app.exposure.models import BuyerExposure
from app.exposure.revaluation import Affected
from app.scheduling.locks import try_tenant_lock
from app.scheduling.models import JobRun
from app.tenants.models import Tenant
from app.webhooks.dispatcher import dispatch_pending

log = logging.getLogger("coverwatch.jobs")
DAILY_SCAN = "daily_scan"
REVALUE = "revalue"


def _tenant_ids(db: Database, only: list[str] | None = None) -> list[str]:
    with db.read_session() as session:
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


@dataclass
class TenantRun:
    """What one run of a job did: tenants done, skipped (nothing to do, or another runner holds them), failed."""

    job: str
    done: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)


def for_each_tenant(db: Database, settings: Settings, job: str, work: Callable[[Context], bool],
                    only: list[str] | None = None, *, commit: bool = True) -> TenantRun:
    """Run `work` for each tenant, each in its own transaction under the (job, tenant) advisory lock.

    `work` returns whether it did something (False: nothing due). It is called only while this runner holds
    the tenant's lock, and its transaction is committed before the next tenant; an exception rolls back that
    tenant only, is logged and counted in `failed`. With `commit=False` (a check) every transaction is rolled
    back."""
    run = TenantRun(job)
    for tenant_id in _tenant_ids(db, only):
        with db.session() as session:
            try:
                if not try_tenant_lock(session, job, tenant_id):
                    run.skipped.append(tenant_id)
                    session.rollback()
                    continue
                tenant = session.get(Tenant, tenant_id)
                if tenant is None:  # deleted meanwhile
                    session.rollback()
                    continue
                did = work(system_context(session, tenant, settings))
                if commit:
                    session.commit()
                else:
                    session.rollback()
            except Exception:
                session.rollback()
                run.failed.append(tenant_id)
                log.exception("job %s failed for tenant %s", job, tenant_id)
                continue
            (run.done if did else run.skipped).append(tenant_id)
    if run.failed:
        log.error("job %s: %d tenant(s) failed, %d done", job, len(run.failed), len(run.done))
    return run


def dispatch(db: Database, settings: Settings) -> int:
    return dispatch_pending(db, settings)


def revaluations(db: Database, settings: Settings) -> int:
    """Run queued background revaluations until none is left. Returns how many ran."""
    from app.exposure.revaluation import run_pending

    return len(run_pending(db, settings))


def revalue(db: Database, settings: Settings, tenant_ids: list[str] | None = None) -> int:
    """Recompute the tenants whose stored exposure was valued before their today. Returns how many."""
    return len(revalue_run(db, settings, tenant_ids).done)


def revalue_run(db: Database, settings: Settings, tenant_ids: list[str] | None = None) -> TenantRun:
    def work(ctx: Context) -> bool:
        turned = Affected(valued_before=ctx.today)
        unmarked = select(BuyerExposure.id).where(BuyerExposure.stale == false(), turned.exposures(ctx.session))
        if ctx.session.scalar(unmarked.limit(1)) is None:
            return False  # every row valued today, or marked for a walk already queued
        revaluation.queue(ctx, turned, "the day turned")
        return True

    return _walk(db, settings, for_each_tenant(db, settings, REVALUE, work, tenant_ids))


def _walk(db: Database, settings: Settings, run: TenantRun, **kw: Any) -> TenantRun:
    """Run the revaluations the tenants' work queued: here, in committed chunks, with any free runner of another
    process helping (app/exposure/revaluation.py: `help_running`), rather than each tenant's whole walk in one
    process and one transaction. A tenant whose walk failed counts as failed (its job says why)."""
    if run.done:
        for outcome in revaluation.run_pending(db, settings, tenant_ids=list(run.done), **kw):
            if outcome.state == revaluation.FAILED and outcome.tenant_id in run.done:
                run.done.remove(outcome.tenant_id)
                run.failed.append(outcome.tenant_id)
    return run


def daily_scan(db: Database, settings: Settings, *, force: bool = False, now: datetime | None = None,
               tenant_ids: list[str] | None = None) -> list[str]:
    """Run the daily scan for every tenant whose scan hour has come today and who has not had it yet.
    Returns the tenants scanned (`daily_scan_run` tells the skipped and failed ones too)."""
    return daily_scan_run(db, settings, force=force, now=now, tenant_ids=tenant_ids).done


def daily_scan_run(db: Database, settings: Settings, *, force: bool = False, now: datetime | None = None,
                   tenant_ids: list[str] | None = None, **walk: Any) -> TenantRun:
    """The daily scan of each tenant due: its walk of every buyer queued as a revaluation (marked done for the day
    in the same transaction), then run (`_walk`); the runner that finishes it takes the day's snapshot. `walk`:
    `run_pending`'s chunk options (tests)."""

    def work(ctx: Context) -> bool:
        session, tenant = ctx.session, ctx.tenant
        local = (now or utcnow()).astimezone(ZoneInfo(tenant.timezone))
        due = settings.today is not None or local.hour >= tenant.daily_scan_hour
        # Read after taking the lock: a replica that scanned this tenant a moment ago has committed its mark.
        ran = session.scalar(select(JobRun.id).where(JobRun.job == DAILY_SCAN, JobRun.day == ctx.today))
        if not force and (ran is not None or not due):
            return False
        revaluation.queue(ctx, revaluation.EVERYONE, "daily scan", snapshot_on=ctx.today)
        purge_expired(session, settings.idempotency_ttl_hours)
        revaluation.purge_finished(session)
        if ran is None:
            session.add(JobRun(job=DAILY_SCAN, day=ctx.today))
        log.info("daily scan queued for tenant %s (%s)", tenant.id, ctx.today)
        return True

    return _walk(db, settings, for_each_tenant(db, settings, DAILY_SCAN, work, tenant_ids), **walk)
