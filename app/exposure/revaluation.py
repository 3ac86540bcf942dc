"""Tenant-wide changes without a tenant-wide request: revalue only who a change can move, in the background
when they are many.

A policy, FX or settings change names the buyers it can affect (`Affected`: nobody, the buyers of some countries,
the buyers with open invoices in some currencies, or everyone). Up to COVERWATCH_INLINE_REVALUATION_MAX_BUYERS of
them are refreshed in the request, as any ingest. Beyond, the request only marks their stored rows `stale` (one
UPDATE) and queues a `Revaluation` in its own transaction; the change and the job are stored together, so a 202
is as durable as a 200. Dashboards keep reading the stale rows meanwhile, and are told so.

Runners (`run_pending`: the scheduler of `coverwatch serve` and `coverwatch worker`, or `coverwatch revaluations`)
claim a job (`SKIP LOCKED` on PostgreSQL; SQLite has one writer at a time) under a lease, then work through the
tenant's stale rows by buyer id after the job's cursor, one committed transaction per chunk. A runner that finds
every job taken helps a running one from the other end of its buyers (`help_running`, PostgreSQL): one tenant's
revaluation is shared by every worker and replica that is free. A runner that dies
leaves a cursor and a lease that runs out: the next runner goes on from there. A chunk that fails fails its job
(logged, with the error), never the other tenants' jobs.

Why the stale rows are the work list: every change marks the rows it moves before its job can start, and a
queued job starts from the first buyer, so whatever a job has not reached is still marked. A second change while
a job is queued joins it; while one runs, it queues another that starts after it. Each chunk locks its buyers,
clears their marks, and only then reads the inputs: a change that marked one of them committed before, so its
inputs are read; a change that marks them later waits on the chunk and leaves them marked for its own job.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any, cast
from uuid import uuid4

from sqlalchemy import ColumnElement, CursorResult, and_, delete, exists, false, func, or_, select, true, update
from sqlalchemy.orm import Session, aliased

from app.core.clock import utcnow
from app.core.config import Settings
from app.core.context import Context, system_context
from app.core.db import Database, in_list
from app.cover.inputs import CoverInputs
from app.exposure import repository as repo
from app.exposure import service as exposure
from app.exposure import totals
from app.exposure.models import BuyerExposure, Revaluation
from app.ledger import repository as ledger_repo
from app.ledger.models import Buyer, Invoice
from app.tenants.models import Tenant

log = logging.getLogger("coverwatch.revaluation")
CHUNK = 500
CHUNK_INVOICES = 20_000  # a chunk also stops at this many open invoices (at least one buyer): memory stays flat
KEEP_DAYS = 30  # a finished revaluation stays readable at its URL this long
QUEUED, RUNNING, DONE, FAILED = "queued", "running", "done", "failed"


@dataclass(frozen=True)
class Affected:
    """The buyers a change can move. More is always correct; fewer is a bug."""

    everyone: bool = False
    countries: frozenset[str] = frozenset()
    currencies: frozenset[str] = frozenset()  # buyers with an open invoice in one of them
    buyers: frozenset[int] = frozenset()  # these buyers (by id): what a bulk import wrote to
    valued_before: date | None = None  # buyers whose stored figures are of an earlier day (the day turned)

    def __bool__(self) -> bool:
        return (self.everyone or bool(self.countries) or bool(self.currencies) or bool(self.buyers)
                or self.valued_before is not None)

    def condition(self) -> ColumnElement[bool]:
        """Which `Buyer` rows (of the session's tenant)."""
        if self.everyone:
            return true()
        parts: list[ColumnElement[bool]] = []
        if self.buyers:
            parts.append(in_list(Buyer.id, sorted(self.buyers)))
        if self.countries:
            parts.append(Buyer.country.in_(sorted(self.countries)))
        if self.currencies:
            parts.append(Buyer.id.in_(select(Invoice.buyer_id).where(
                Invoice.kind == "invoice", Invoice.open_balance > 0, Invoice.currency.in_(sorted(self.currencies)))))
        if self.valued_before is not None:
            parts.append(Buyer.id.in_(select(BuyerExposure.buyer_id).where(
                BuyerExposure.valued_on < self.valued_before)))
        return or_(*parts) if parts else false()

    def exposures(self, session: Session) -> ColumnElement[bool]:
        """Which `BuyerExposure` rows (of the session's tenant). Buyers named by id (what a bulk import wrote to) are
        found on the unique index of `buyer_id`, whatever the planner knows of the tables: joined to `buyers`
        without statistics (a tenant just loaded, autovacuum not yet by), PostgreSQL read every pair of rows,
        70 ms a batch at 1,000 buyers. So are buyers found by country or currency, their ids read first: as one
        statement, PostgreSQL planned the semi-joins for every open invoice in the currency as a buyer of its own
        (28,000 for 2,449) and read every exposure row of the tenant (an FX rate's PUT at 50,000 buyers: 0.4-0.9 s
        in that UPDATE)."""
        if self.everyone:
            return true()
        if self.valued_before is not None and not self.buyers and not self.countries and not self.currencies:
            return BuyerExposure.valued_on < self.valued_before
        if self.buyers and not self.countries and not self.currencies and self.valued_before is None:
            ids = sorted(self.buyers)
        else:
            ids = list(session.scalars(select(Buyer.id).where(self.condition())))
        return in_list(BuyerExposure.buyer_id, ids)


EVERYONE = Affected(everyone=True)
NOBODY = Affected()


def revalue(ctx: Context, affected: Affected, reason: str) -> Revaluation | None:
    """Bring the affected buyers up to date with a change made in this transaction: refreshed here when few,
    else marked stale and left to a background revaluation (returned). The caller bumps the exposure version
    last (the tenant row comes after the buyers and their rows, in every transaction)."""
    ids = inline_ids(ctx, affected)
    if ids is None:
        return queue(ctx, affected, reason)
    exposure.refresh_buyers(ctx, ids)
    return None


def inline_ids(ctx: Context, affected: Affected) -> list[int] | None:
    """The affected buyers' ids when they are few enough to refresh in the request; None when they are not."""
    if not affected:
        return []
    most = ctx.settings.inline_revaluation_max_buyers
    ids = list(ctx.session.scalars(select(Buyer.id).where(affected.condition()).order_by(Buyer.id).limit(most + 1)))
    return ids if len(ids) <= most else None


def queue(ctx: Context, affected: Affected, reason: str, *, snapshot_on: date | None = None) -> Revaluation:
    """Mark the affected rows stale and queue a revaluation of the tenant's stale rows (joining one that has not
    started yet). Nothing is locked but the queued job and the rows marked, in id order. With `snapshot_on` (the
    daily scan), the runner that finishes the job takes that day's snapshot."""
    session = ctx.session
    stmt = select(Revaluation).where(Revaluation.state == QUEUED).order_by(Revaluation.created_at).limit(1)
    job = session.scalars(stmt.with_for_update()).first()
    if job is None:
        job = Revaluation(id=str(uuid4()), reason=reason[:500], state=QUEUED, total=0, done=0, cursor=0,
                          snapshot_on=snapshot_on)
        session.add(job)
        session.flush()
    else:
        if reason not in job.reason.split("; "):
            job.reason = f"{job.reason}; {reason}"[:500]
        if snapshot_on is not None:
            job.snapshot_on = max(job.snapshot_on or snapshot_on, snapshot_on)
    rows = select(BuyerExposure.id).where(BuyerExposure.stale == false(), affected.exposures(session))
    # One UPDATE, its row locks taken in id order (as a flush takes them): never a cycle with an ingest writing
    # some of these rows.
    session.execute(update(BuyerExposure).where(BuyerExposure.id.in_(rows.order_by(BuyerExposure.id)
                                                                     .with_for_update()))
                    .values(stale=True, updated_at=BuyerExposure.updated_at)  # figures unchanged: their time too
                    .execution_options(synchronize_session=False))
    job.total = repo.stale_buyers(session)
    session.flush()
    log.info("revaluation %s queued for tenant %s: %s (%d buyers)", job.id, ctx.tenant.id, reason, job.total)
    return job


def get(ctx: Context, revaluation_id: str) -> Revaluation | None:
    return ctx.session.scalars(select(Revaluation).where(Revaluation.id == revaluation_id)).first()


# --- runners ---------------------------------------------------------------------------------------


@dataclass
class Outcome:
    id: str
    tenant_id: str
    state: str  # done | failed | lost (another runner took it over, or the tenant is gone)


def run_pending(db: Database, settings: Settings, *, tenant_ids: list[str] | None = None,
                max_chunks: int | None = None, chunk: int = CHUNK) -> list[Outcome]:
    """Claim and run queued revaluations (and running ones whose lease ran out) until none is left.

    `max_chunks` stops after that many chunks of one job without finishing it, as a crash would (tests)."""
    runner = str(uuid4())
    outcomes: list[Outcome] = []
    while (claimed := claim(db, settings, runner, tenant_ids)) is not None:
        job_id, tenant_id = claimed
        state = run(db, settings, job_id, tenant_id, runner, max_chunks=max_chunks, chunk=chunk)
        outcomes.append(Outcome(job_id, tenant_id, state))
        if state == RUNNING:  # stopped on purpose, lease held: not claimable again in this call
            break
    if max_chunks is None:
        help_running(db, settings, tenant_ids, chunk=chunk)
    return outcomes


def help_running(db: Database, settings: Settings, tenant_ids: list[str] | None = None, *,
                 chunk: int = CHUNK) -> int:
    """Take part in the running revaluations of other runners (PostgreSQL): several replicas or workers share one
    tenant's revaluation instead of one doing it all. A helper works from the other end: it locks the stale
    buyers with the highest ids after the job's cursor, skipping those locked (`SKIP LOCKED`: it never waits),
    revalues them in a committed chunk and adds them to the job's `done`. The job's runner, walking up from its
    cursor, waits for the buyers a helper holds and finds them revalued: it finishes the job only once every
    helper's chunk has committed, and a helper that dies leaves its buyers stale, for the runner. Returns how
    many buyers this call revalued."""
    if db.dialect != "postgresql":
        return 0  # SQLite has one writer at a time: nothing to share
    helped = 0
    while (running := _running(db, tenant_ids)) is not None:
        job_id, tenant_id = running
        with db.session() as session:
            try:
                n = _help_chunk(session, settings, job_id, tenant_id, chunk)
            except Exception:
                session.rollback()  # the buyers stay stale: the job's runner revalues them
                log.exception("helping revaluation %s of tenant %s failed", job_id, tenant_id)
                return helped
        if not n:
            return helped
        helped += n
    return helped


def _running(db: Database, tenant_ids: list[str] | None) -> tuple[str, str] | None:
    """The oldest revaluation running under a live lease (of these tenants)."""
    stmt = (select(Revaluation.id, Revaluation.tenant_id)
            .where(Revaluation.state == RUNNING, Revaluation.lease_until >= utcnow())
            .order_by(Revaluation.created_at).limit(1))
    if tenant_ids is not None:
        stmt = stmt.where(Revaluation.tenant_id.in_(tenant_ids))
    with db.read_session() as session:
        row = session.execute(stmt).first()
    return (row.id, row.tenant_id) if row is not None else None


def _help_chunk(session: Session, settings: Settings, job_id: str, tenant_id: str, size: int) -> int:
    tenant = session.get(Tenant, tenant_id)
    if tenant is None:
        return 0
    ctx = system_context(session, tenant, settings)
    job = get(ctx, job_id)
    if job is None or job.state != RUNNING:
        return 0
    stale = select(BuyerExposure.buyer_id).where(BuyerExposure.stale == true(), BuyerExposure.buyer_id > job.cursor)
    candidates = list(session.scalars(stale.order_by(BuyerExposure.buyer_id.desc()).limit(size)))
    ids = list(session.scalars(select(Buyer.id).where(Buyer.id.in_(_within(session, candidates)))
                               .order_by(Buyer.id).with_for_update(skip_locked=True)))
    revalued = _clear_marks(session, ids)
    if not revalued:
        session.rollback()
        return 0
    exposure.refresh_buyers(ctx, revalued, CoverInputs.load(session, ctx.today))
    session.execute(update(Revaluation).where(Revaluation.id == job_id)
                    .values(done=Revaluation.done + len(revalued), heartbeat_at=utcnow())
                    .execution_options(synchronize_session=False))
    session.commit()
    return len(revalued)


def _clear_marks(session: Session, ids: list[int]) -> list[int]:
    """Clear the stale marks of these buyers (locked by the caller) and return those that had one: a buyer that
    another runner revalued since it was chosen is not revalued again."""
    if not ids:
        return []
    return sorted(session.scalars(
        update(BuyerExposure).where(in_list(BuyerExposure.buyer_id, ids), BuyerExposure.stale == true())
        .values(stale=False, updated_at=BuyerExposure.updated_at).returning(BuyerExposure.buyer_id)
        .execution_options(synchronize_session=False)))


def claim(db: Database, settings: Settings, runner: str, tenant_ids: list[str] | None = None
          ) -> tuple[str, str] | None:
    """The oldest claimable job, now this runner's for a lease: queued, or running with its lease run out. A
    tenant whose other job is running under a live lease waits (its jobs run one after the other)."""
    now = utcnow()
    other = aliased(Revaluation)
    busy = exists().where(other.tenant_id == Revaluation.tenant_id, other.id != Revaluation.id,
                          other.state == RUNNING, other.lease_until >= now)
    stmt = (select(Revaluation)
            .where(or_(Revaluation.state == QUEUED, and_(Revaluation.state == RUNNING, Revaluation.lease_until < now)),
                   ~busy)
            .order_by(Revaluation.created_at).limit(1))
    if tenant_ids is not None:
        stmt = stmt.where(Revaluation.tenant_id.in_(tenant_ids))
    with db.read_session() as session:  # mostly nothing to do: found without SQLite's write lock
        if session.scalars(stmt.with_only_columns(Revaluation.id)).first() is None:
            return None
    with db.session() as session, session.begin():
        if db.dialect == "postgresql":
            stmt = stmt.with_for_update(skip_locked=True, of=Revaluation)
        job = session.scalars(stmt).first()
        if job is None:
            return None
        if job.state == RUNNING:
            log.warning("revaluation %s: lease of runner %s ran out at buyer %d; taken over", job.id, job.runner,
                        job.cursor)
        job.state, job.runner, job.heartbeat_at = RUNNING, runner, now
        job.lease_until = now + timedelta(seconds=settings.revaluation_lease_seconds)
        job.started_at = job.started_at or now
        return job.id, job.tenant_id


def run(db: Database, settings: Settings, job_id: str, tenant_id: str, runner: str, *,
        max_chunks: int | None = None, chunk: int = CHUNK) -> str:
    """Run a claimed job chunk by chunk, each chunk in its own committed transaction."""
    chunks = 0
    while max_chunks is None or chunks < max_chunks:
        with db.session() as session:
            try:
                state = _chunk(session, settings, job_id, tenant_id, runner, chunk)
            except Exception as exc:
                session.rollback()
                log.exception("revaluation %s of tenant %s failed", job_id, tenant_id)
                _fail(db, job_id, tenant_id, runner, exc)
                return FAILED
        if state != RUNNING:
            return state
        chunks += 1
    return RUNNING


def _chunk(session: Session, settings: Settings, job_id: str, tenant_id: str, runner: str, size: int) -> str:
    tenant = session.get(Tenant, tenant_id)
    if tenant is None:
        return "lost"
    ctx = system_context(session, tenant, settings)
    job = get(ctx, job_id)
    if job is None or job.runner != runner or job.state != RUNNING:
        session.rollback()
        return "lost"
    ids = _within(session, list(session.scalars(
        select(BuyerExposure.buyer_id).where(BuyerExposure.stale == true(), BuyerExposure.buyer_id > job.cursor)
        .order_by(BuyerExposure.buyer_id).limit(size))))
    now = utcnow()
    values: dict[str, Any]
    if ids:
        ledger_repo.lock_buyers(session, ids)  # buyers first, by id, as every writer takes them
        # Only the buyers still marked: a helper (`help_running`) may have revalued some while this chunk waited.
        revalued = _clear_marks(session, ids)
        # Read after the marks are cleared: any change that marked these rows has committed its inputs by now.
        if revalued:
            exposure.refresh_buyers(ctx, revalued, CoverInputs.load(session, ctx.today))
        done = Revaluation.done + len(revalued)  # helpers add theirs to the same column
        values = {"cursor": ids[-1], "done": done, "total": done + repo.stale_buyers(session, ids[-1]),
                  "heartbeat_at": now, "lease_until": now + timedelta(seconds=settings.revaluation_lease_seconds)}
        state = RUNNING
    else:
        if job.snapshot_on is not None:  # a daily scan's walk, over: the totals summed afresh, the day's history
            totals.rebuild(session, tenant_id)
            exposure.snapshot(ctx, job.snapshot_on)
        values = {"state": DONE, "total": Revaluation.done, "finished_at": now, "heartbeat_at": now,
                  "lease_until": None}
        state = DONE
    mine = update(Revaluation).where(Revaluation.id == job_id, Revaluation.runner == runner,
                                     Revaluation.state == RUNNING)
    result = session.execute(mine.values(**values).execution_options(synchronize_session=False))
    if not cast(CursorResult[Any], result).rowcount:  # the lease ran out and another runner has it
        session.rollback()
        return "lost"
    session.commit()
    if state == DONE:
        log.info("revaluation %s of tenant %s done", job_id, tenant_id)
    return state


def _within(session: Session, ids: list[int], most: int = CHUNK_INVOICES) -> list[int]:
    """The first of `ids` whose open invoices add up to at most `most` (at least one buyer): a chunk of buyers
    with a thousand invoices each is walked a few at a time, not 500 at once."""
    counts = ledger_repo.open_counts(session, ids)
    total = 0
    for n, buyer_id in enumerate(ids):
        total += counts.get(buyer_id, 0)
        if total > most and n:
            return ids[:n]
    return ids


def _fail(db: Database, job_id: str, tenant_id: str, runner: str, exc: Exception) -> None:
    with db.session(tenant_id) as session, session.begin():
        session.execute(
            update(Revaluation).where(Revaluation.id == job_id, Revaluation.runner == runner)
            .values(state=FAILED, error=f"{type(exc).__name__}: {exc}"[:2000], finished_at=utcnow(), lease_until=None)
            .execution_options(synchronize_session=False))


def requeue_stale(db: Database, settings: Settings, tenant_ids: list[str] | None = None) -> list[str]:
    """Queue a revaluation for each tenant left with stale rows and no job to clear them (after a failed job).
    Returns the tenants queued."""
    from app.scheduling.jobs import tenant_contexts

    queued: list[str] = []
    for ctx in tenant_contexts(db, settings, tenant_ids):
        pending = ctx.session.scalar(select(func.count()).select_from(Revaluation)
                                     .where(Revaluation.state.in_([QUEUED, RUNNING])))
        if not pending and repo.stale_buyers(ctx.session):
            queue(ctx, NOBODY, "requeued: stale rows left by a failed revaluation")
            queued.append(ctx.tenant.id)
        ctx.session.commit()
    return queued


def purge_finished(session: Session, days: int = KEEP_DAYS) -> int:
    """Forget the revaluations finished more than `days` ago (the daily scan's housekeeping)."""
    cutoff = utcnow() - timedelta(days=days)
    result = session.execute(delete(Revaluation).where(Revaluation.state.in_([DONE, FAILED]),
                                                       Revaluation.finished_at < cutoff))
    return cast(CursorResult[Any], result).rowcount or 0


def progress(job: Revaluation) -> float:
    """Share of the job done, 0 to 1 (1 once done)."""
    if job.state == DONE:
        return 1.0
    return 0.0 if not job.total else min(1.0, job.done / job.total)
