"""Jobs per tenant: each tenant in its own transaction under a (job, tenant) advisory lock; a failing tenant
is logged and counted without stopping the others; runners share tenants and never do one twice."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from sqlalchemy import func, select, text

from app.core.config import Settings
from app.core.db import Database
from app.migrate import upgrade
from app.scheduling.jobs import daily_scan_run
from app.scheduling.locks import tenant_lock_key
from app.scheduling.models import JobRun
from app.tenants.service import create_tenant
from tests.helpers import buyer, domain_policies, invoice, limit


def _portfolio(client, buyers: int = 3) -> None:
    domain_policies(client)
    for b in range(buyers):
        buyer(client, f"B{b}")
        limit(client, "50000.00", "2026-01-01", buyer_ref=f"B{b}")
        for i in range(3):
            invoice(client, f"F{b}-{i}", "20000.00", "2026-02-10", "2026-04-11", buyer_ref=f"B{b}")


def _runs(database: Database, tenant_ids: list[str]) -> dict[str, int]:
    with database.session() as s:
        rows = s.execute(select(JobRun.tenant_id, func.count()).where(
            JobRun.tenant_id.in_(tenant_ids), JobRun.job == "daily_scan").group_by(JobRun.tenant_id))
        return {t: n for t, n in rows}


def test_a_failing_tenant_is_logged_and_counted_and_the_others_are_scanned(make_tenant, app, database, caplog):
    tenants = [make_tenant(f"T{i}") for i in range(3)]
    for t in tenants:
        _portfolio(t.client, buyers=1)
    ids = sorted(t.id for t in tenants)
    broken = ids[1]  # in the middle of the run: the ones after it must still be scanned
    with database.session() as s, s.begin():
        s.execute(text("UPDATE tenants SET timezone = 'Nowhere/Atlantis' WHERE id = :t"), {"t": broken})
    with caplog.at_level(logging.ERROR, logger="coverwatch.jobs"):
        run = daily_scan_run(database, app.state.settings, tenant_ids=ids)
    assert run.failed == [broken]
    assert run.done == [ids[0], ids[2]]
    assert _runs(database, ids) == {ids[0]: 1, ids[2]: 1}
    assert any(broken in r.getMessage() and r.exc_info for r in caplog.records)
    # The next run retries only what is still due: the broken tenant, which fails again, alone.
    again = daily_scan_run(database, app.state.settings, tenant_ids=ids)
    assert (again.done, again.failed) == ([], [broken])


def test_a_tenant_held_by_another_runner_is_skipped_and_the_others_done(make_tenant, app, database):
    if database.dialect != "postgresql":
        pytest.skip("SQLite is one process: the per-tenant lock is PostgreSQL's")
    tenants = [make_tenant(f"T{i}") for i in range(3)]
    ids = sorted(t.id for t in tenants)
    with database.engine.connect() as other:
        # Another runner in the middle of ids[1]'s job: its transaction holds the (job, tenant) lock.
        assert other.execute(text("SELECT pg_try_advisory_xact_lock(:k)"),
                             {"k": tenant_lock_key("daily_scan", ids[1])}).scalar()
        run = daily_scan_run(database, app.state.settings, tenant_ids=ids)
        assert (run.done, run.skipped, run.failed) == ([ids[0], ids[2]], [ids[1]], [])
        other.commit()  # the lock goes with the transaction
    assert daily_scan_run(database, app.state.settings, tenant_ids=ids).done == [ids[1]]
    assert _runs(database, ids) == {i: 1 for i in ids}


def test_two_runners_share_the_tenants_and_never_scan_one_twice(make_tenant, app, database):
    if database.dialect != "postgresql":
        pytest.skip("SQLite is one process: concurrent runners are a PostgreSQL deployment")
    tenants = [make_tenant(f"T{i}") for i in range(6)]
    for t in tenants:
        _portfolio(t.client)
    ids = sorted(t.id for t in tenants)
    start = threading.Barrier(2)
    runs = []

    def runner() -> None:
        start.wait()
        runs.append(daily_scan_run(database, app.state.settings, tenant_ids=ids))

    threads = [threading.Thread(target=runner) for _ in range(2)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    a, b = runs
    assert not a.failed and not b.failed
    assert not set(a.done) & set(b.done)
    assert sorted(a.done + b.done) == ids
    assert _runs(database, ids) == {i: 1 for i in ids}


def test_the_worker_command_runs_the_jobs_apart_from_the_web_process(tmp_path: Path):
    url = f"sqlite:///{tmp_path / 'worker.db'}"
    upgrade(url)
    db = Database(url)
    with db.session() as session, session.begin():
        tenant, _ = create_tenant(session, "Acme", "EUR")
    env = {**os.environ, "COVERWATCH_DATABASE_URL": url, "COVERWATCH_TODAY": "2026-03-20",
           "COVERWATCH_LOG_LEVEL": "WARNING"}
    out = subprocess.run([sys.executable, "-m", "app.cli", "worker", "--once"], env=env, capture_output=True,
                         text=True, timeout=120, check=False)
    assert out.returncode == 0, out.stderr
    assert "scanned 1 tenant(s)" in out.stdout
    assert _runs(db, [tenant.id]) == {tenant.id: 1}
    db.dispose()
    assert Settings(scheduler_enabled=False).scheduler_enabled is False
