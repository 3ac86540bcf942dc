"""The periodic jobs: idempotent daily scan with snapshots, revaluation, the single-runner lock."""

from datetime import date

import pytest
from sqlalchemy import func, select, text

from app.exposure.models import ExposureSnapshot
from app.scheduling.jobs import daily_scan, revalue
from app.scheduling.locks import tenant_lock_key
from app.scheduling.models import JobRun
from tests.helpers import buyer, domain_policies, exposure, invoice, limit, ok


def _count(database, model, tenant_id, **where):
    with database.session() as s:
        stmt = select(func.count()).select_from(model).where(model.tenant_id == tenant_id)
        for k, v in where.items():
            stmt = stmt.where(getattr(model, k) == v)
        return s.scalar(stmt)


def test_daily_scan_runs_once_a_day_and_snapshots_every_buyer(api, tenant, app, database, clock):
    domain_policies(api)
    for ref in ("B1", "B2", "B3"):
        buyer(api, ref)
        limit(api, "1000.00", "2026-01-01", buyer_ref=ref)
        invoice(api, f"{ref}-I", "1500.00", "2026-02-01", "2026-03-31", buyer_ref=ref)
    settings = app.state.settings
    assert daily_scan(database, settings, tenant_ids=[tenant.id]) == [tenant.id]
    assert daily_scan(database, settings, tenant_ids=[tenant.id]) == []  # once a day
    assert _count(database, JobRun, tenant.id) == 1
    assert _count(database, ExposureSnapshot, tenant.id, day=date(2026, 3, 20)) == 3
    with database.session() as s:
        snap = s.scalars(select(ExposureSnapshot).where(ExposureSnapshot.tenant_id == tenant.id)).first()
    assert (snap.outstanding, snap.covered_primary, snap.covered_top_up, snap.status) == (1500, 1000, 500,
                                                                                          "above_primary")
    clock.set(date(2026, 3, 21))
    assert daily_scan(database, settings, tenant_ids=[tenant.id]) == [tenant.id]
    assert _count(database, ExposureSnapshot, tenant.id) == 6
    # Forced again the same day: today's snapshot is replaced, not doubled.
    daily_scan(database, settings, tenant_ids=[tenant.id], force=True)
    assert _count(database, ExposureSnapshot, tenant.id) == 6
    assert _count(database, JobRun, tenant.id) == 2


def test_revalue_applies_date_driven_changes(api, tenant, app, database, clock):
    domain_policies(api)
    buyer(api, "B1")
    limit(api, "1000.00", "2026-01-01")
    invoice(api, "I1", "500.00", "2026-02-01", "2026-03-31")
    assert revalue(database, app.state.settings, [tenant.id]) == 0  # valued today already
    clock.set(date(2026, 6, 1))
    assert revalue(database, app.state.settings, [tenant.id]) == 1
    e = exposure(api)
    assert (e["valued_on"], e["invoices"][0]["reason"]) == ("2026-06-01", "claim_deadline_passed")
    assert sorted(a["type"] for a in ok(api.get("/v1/alerts"))["items"] if a["state"] == "open") == [
        "claim_deadline_missed", "exposure_above_cover"]


def test_a_scan_held_by_another_replica_is_skipped(api, tenant, app, database):
    if database.dialect != "postgresql":
        pytest.skip("SQLite is one process: the per-tenant lock is PostgreSQL's")
    buyer(api, "B1")
    key = tenant_lock_key("daily_scan", tenant.id)
    with database.engine.connect() as other:
        assert other.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": key}).scalar()
        assert daily_scan(database, app.state.settings, tenant_ids=[tenant.id]) == []
        other.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": key})
        other.commit()
    assert daily_scan(database, app.state.settings, tenant_ids=[tenant.id]) == [tenant.id]


def test_the_daily_scan_walks_as_a_revaluation_another_runner_finishes_and_snapshots(
        api, tenant, app, database, clock):
    """The scan's walk is a background revaluation in committed chunks: a runner that dies half-way leaves it to
    another, and whoever finishes it takes the day's snapshot; the scan itself is marked done once queued."""
    from datetime import timedelta

    from sqlalchemy import update

    from app.core.clock import utcnow
    from app.exposure.jobs import recompute
    from app.exposure.models import BuyerExposure, Revaluation
    from app.exposure.revaluation import run_pending
    from app.scheduling.jobs import daily_scan_run

    domain_policies(api)
    for n in range(5):
        buyer(api, f"B{n}")
        limit(api, "1000.00", "2026-01-01", buyer_ref=f"B{n}")
        invoice(api, f"B{n}-I", "1500.00", "2026-02-01", "2026-03-31", buyer_ref=f"B{n}")
    settings = app.state.settings
    clock.set(date(2026, 3, 21))
    run = daily_scan_run(database, settings, tenant_ids=[tenant.id], chunk=2, max_chunks=1)  # then "crashes"
    assert run.done == [tenant.id]
    assert _count(database, ExposureSnapshot, tenant.id) == 0
    assert _count(database, BuyerExposure, tenant.id, stale=True) == 3
    assert daily_scan(database, settings, tenant_ids=[tenant.id]) == []  # the day's scan is under way
    with database.session(tenant.id) as s, s.begin():
        [job] = s.scalars(select(Revaluation).where(Revaluation.reason == "daily scan"))
        assert (job.state, job.done, job.snapshot_on) == ("running", 2, date(2026, 3, 21))
        s.execute(update(Revaluation).values(lease_until=utcnow() - timedelta(seconds=1)))
    [outcome] = run_pending(database, settings, tenant_ids=[tenant.id])  # another runner takes it over
    assert outcome.state == "done"
    assert _count(database, ExposureSnapshot, tenant.id, day=date(2026, 3, 21)) == 5
    assert _count(database, BuyerExposure, tenant.id, stale=True) == 0
    assert _count(database, BuyerExposure, tenant.id, valued_on=date(2026, 3, 21)) == 5
    assert recompute(database, settings, tenant_id=tenant.id, check_only=True) == []
