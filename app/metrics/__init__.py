"""Prometheus metrics: what the operator sees of the service (`GET /metrics`).

Counters and histograms are incremented where things happen: the HTTP middleware, the ingest (counted when a
transaction that stored new rows commits), the webhook dispatcher and the scheduled jobs. The exposure, alert
and queue gauges are read from the stored rows at scrape time (collector.py): cheap sums, labelled by tenant,
never by buyer. With several worker processes, set PROMETHEUS_MULTIPROC_DIR to an empty directory shared by
them: prometheus-client's multiprocess mode then adds up every worker's counters.
"""

from __future__ import annotations

import os
import time
from collections import Counter as Tally
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from prometheus_client import Counter, Gauge, Histogram, disable_created_metrics
from sqlalchemy import event
from sqlalchemy.orm import Session

MULTIPROCESS = bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))
disable_created_metrics()  # no `_created` series: dashboards never read them

HTTP_REQUESTS = Counter("coverwatch_http_requests", "HTTP requests by route template, method and status",
                        ["route", "method", "status"])
HTTP_LATENCY = Histogram("coverwatch_http_request_duration_seconds", "HTTP request latency by route template",
                         ["route", "method"],
                         buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30))
INGESTED = Counter("coverwatch_ingested", "New invoices, credit notes, payments and limit decisions stored",
                   ["kind"])
WEBHOOK_ATTEMPTS = Counter("coverwatch_webhook_attempts", "Webhook delivery attempts by outcome", ["outcome"])
WEBHOOK_FAILURES = Counter("coverwatch_webhook_failures", "Webhook delivery attempts that failed")
WEBHOOK_LATENCY = Histogram("coverwatch_webhook_latency_seconds", "Webhook delivery attempt latency",
                            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30))
REQUEST_RETRIES = Counter("coverwatch_request_retries", "Requests run again after a transient database failure "
                          "(deadlock, serialization, unique key race, busy SQLite)", ["reason"])
JOB_RUNS = Counter("coverwatch_job_runs", "Scheduled job runs", ["job"])
JOB_FAILURES = Counter("coverwatch_job_failures", "Scheduled job runs that failed", ["job"])
JOB_DURATION = Histogram("coverwatch_job_duration_seconds", "Scheduled job run duration", ["job"],
                         buckets=(0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 900))
JOB_LAST_SUCCESS = Gauge("coverwatch_job_last_success_timestamp_seconds",
                         "Unix time of the job's last successful run", ["job"], multiprocess_mode="max")


def webhook_attempt(ok: bool, latency_ms: int) -> None:
    WEBHOOK_ATTEMPTS.labels("delivered" if ok else "failed").inc()
    if not ok:
        WEBHOOK_FAILURES.inc()
    WEBHOOK_LATENCY.observe(latency_ms / 1000)


@contextmanager
def job_run(name: str) -> Iterator[None]:
    """Count and time one run of a scheduled job; a run that raises is a failure."""
    started = time.perf_counter()
    JOB_RUNS.labels(name).inc()
    try:
        yield
    except BaseException:
        JOB_FAILURES.labels(name).inc()
        raise
    finally:
        JOB_DURATION.labels(name).observe(time.perf_counter() - started)
    JOB_LAST_SUCCESS.labels(name).set(time.time())


# --- ingest: new rows counted when their transaction commits ----------------------------------------

_PENDING = "metrics_ingested"


def _kind(obj: Any) -> str | None:
    from app.cover.models import LimitDecision
    from app.ledger.models import Invoice, Payment

    if isinstance(obj, Invoice):
        return obj.kind
    if isinstance(obj, Payment):
        return "payment"
    if isinstance(obj, LimitDecision):
        return "limit_decision"
    return None


def note_new(session: Session, kinds: Iterable[str]) -> None:
    """Count new rows written without the ORM (a batch's new invoices, by COPY) as a flush counts new objects."""
    session.info.setdefault(_PENDING, Tally()).update(kinds)


@event.listens_for(Session, "after_flush")
def _note_new_rows(session: Session, flush_context: Any) -> None:
    kinds = [k for k in map(_kind, session.new) if k is not None]
    if kinds:
        note_new(session, kinds)


@event.listens_for(Session, "after_commit")
def _count_committed(session: Session) -> None:
    for kind, n in session.info.pop(_PENDING, {}).items():
        INGESTED.labels(kind).inc(n)


@event.listens_for(Session, "after_rollback")
def _forget_rolled_back(session: Session) -> None:
    session.info.pop(_PENDING, None)
