"""APScheduler in the app's lifespan (COVERWATCH_SCHEDULER_ENABLED=false turns it off)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from apscheduler.schedulers.background import BackgroundScheduler

from app import metrics
from app.core.clock import utcnow
from app.core.config import Settings
from app.core.db import Database
from app.scheduling import jobs

log = logging.getLogger("coverwatch.scheduler")


def _guarded(job: Callable[..., Any], name: str) -> Callable[..., None]:
    def run(*args: Any) -> None:
        try:
            with metrics.job_run(name):
                job(*args)
        except Exception:  # a failing run must not stop the next one
            log.exception("job %s failed", name)

    return run


def start(db: Database, settings: Settings) -> BackgroundScheduler:
    scheduler = BackgroundScheduler(
        timezone="UTC", job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": 60}
    )
    args = [db, settings]
    now = utcnow()
    scheduler.add_job(_guarded(jobs.dispatch, "dispatch"), "interval", seconds=settings.dispatch_interval_seconds,
                      args=args, id="dispatch", next_run_time=now)
    scheduler.add_job(_guarded(jobs.revalue, "revalue"), "interval", seconds=settings.revalue_interval_seconds,
                      args=args, id="revalue")
    # Background revaluations queued by tenant-wide changes (app/exposure/revaluation.py), claimed job by job.
    scheduler.add_job(_guarded(jobs.revaluations, "revaluations"), "interval",
                      seconds=settings.revaluation_interval_seconds, args=args, id="revaluations", next_run_time=now)
    # Every 10 minutes each tenant whose hour has come gets its scan (once a day); the first run is
    # at start-up, so a restart never skips a day.
    scheduler.add_job(_guarded(jobs.daily_scan, "daily_scan"), "interval", minutes=10, args=args,
                      id="daily_scan", next_run_time=now)
    scheduler.start()
    log.info("scheduler started")
    return scheduler
