"""Transient database failures are run again, not answered 503 (app.core.retry).

A real deadlock on PostgreSQL: another connection locks the tenant row, the request locks its buyer then waits
for the tenant row, and the other connection then asks for the buyer. PostgreSQL aborts one of the two (the
request's: its backend detects the cycle first); the request is run again from the start and answers 2xx. The
loser of a race to create one reference is run again and finds the winner's row (no 409). On SQLite the same
for "database is locked" after the busy timeout; and when every re-run fails, a 503 with Retry-After, and
nothing written.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from prometheus_client import REGISTRY
from sqlalchemy import event, text

from app.core.db import Database
from app.core.retry import RETRIES
from app.exposure import jobs
from app.main import create_app
from tests.helpers import buyer, ok

INVOICE = {"buyer_ref": "B1", "currency": "EUR", "amount": "100.00", "issue_date": "2026-03-01",
           "due_date": "2026-04-30"}


def retries(reason: str) -> float:
    return REGISTRY.get_sample_value("coverwatch_request_retries_total", {"reason": reason}) or 0.0


def wait_for(condition: Callable[[], Any], what: str, seconds: float = 15) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


class InThread:
    """A request sent from a thread of its own, so that the test can act while it waits on a lock."""

    def __init__(self, app: Any, key: str, method: str, url: str, **kwargs: Any) -> None:
        self.response: httpx.Response | None = None

        def send() -> None:
            with TestClient(app, headers={"Authorization": f"Bearer {key}"}, raise_server_exceptions=False) as c:
                self.response = c.request(method, url, **kwargs)

        self.thread = threading.Thread(target=send)
        self.thread.start()

    def result(self) -> httpx.Response:
        self.thread.join(60)
        assert self.response is not None
        return self.response


def test_a_deadlocked_request_is_run_again_and_answers_2xx(app, database, tenant):
    if database.dialect != "postgresql":
        pytest.skip("deadlock detection is PostgreSQL's; SQLite's busy database is the test below")
    api = tenant.client
    buyer(api, "B1")
    before = retries("deadlock")
    with database.engine.connect() as other, database.engine.connect() as watcher:
        # This side waits long before looking for a cycle: the request's backend finds it, and is the one aborted.
        other.execute(text("SET LOCAL deadlock_timeout = '60s'"))
        pid = other.execute(text("SELECT pg_backend_pid()")).scalar()
        other.execute(text("SELECT id FROM tenants WHERE id = :t FOR UPDATE"), {"t": tenant.id})
        request = InThread(app, tenant.key, "PUT", "/v1/invoices/I1", json=INVOICE)

        def request_waits_for_other() -> bool:
            blocked = watcher.execute(text("SELECT count(*) FROM pg_stat_activity "
                                           "WHERE :pid = ANY(pg_blocking_pids(pid))"), {"pid": pid}).scalar()
            watcher.rollback()
            return bool(blocked)

        # The request holds its buyer's row and waits for the tenant row (the ETag version), which `other` holds.
        wait_for(request_waits_for_other, "the request to wait for the tenant row")
        # Now the opposite order: a cycle. PostgreSQL aborts the request's transaction, this lock is granted.
        other.execute(text("SELECT id FROM buyers WHERE tenant_id = :t AND ref = 'B1' FOR UPDATE"),
                      {"t": tenant.id})
        other.commit()
    response = request.result()
    assert response.status_code == 201, response.text
    assert retries("deadlock") == before + 1
    assert ok(api.get("/v1/invoices", params={"buyer_ref": "B1"}))["items"][0]["open_balance"] == "100.00"
    assert ok(api.get("/v1/buyers/B1"))["balances"][0]["balance"] == "100.00"
    assert jobs.recompute(database, app.state.settings, tenant_id=tenant.id, check_only=True) == []


def test_the_loser_of_a_race_to_create_one_reference_is_run_again_and_finds_the_winner(app, database, tenant):
    """Another transaction inserted buyer NEW and has not committed: the request, which found no NEW, waits on
    the unique key, then fails with a unique violation when the other commits. Run again, it updates NEW."""
    if database.dialect != "postgresql":
        pytest.skip("on SQLite the first writer holds the write lock: the request only starts after it")
    from app.ledger.models import Buyer

    before = retries("unique")
    with database.session(tenant.id) as other, database.engine.connect() as watcher:
        other.add(Buyer(ref="NEW", name="Inserted elsewhere", country="DE"))
        other.flush()
        pid = other.connection().exec_driver_sql("SELECT pg_backend_pid()").scalar()
        request = InThread(app, tenant.key, "PUT", "/v1/buyers/NEW", json={"name": "From the ERP", "country": "FR"})

        def request_waits_for_other() -> bool:
            blocked = watcher.execute(text("SELECT count(*) FROM pg_stat_activity "
                                           "WHERE :pid = ANY(pg_blocking_pids(pid))"), {"pid": pid}).scalar()
            watcher.rollback()
            return bool(blocked)

        wait_for(request_waits_for_other, "the request to wait on the unique key")
        other.commit()
    response = request.result()
    assert response.status_code == 200, response.text  # an update of the winner's row: not a 201, not a 409
    assert retries("unique") == before + 1
    assert (response.json()["name"], response.json()["country"]) == ("From the ERP", "FR")


@pytest.fixture
def impatient(app, database) -> Iterator[Any]:
    """An app on the same SQLite file whose connections wait 0.2 s for the write lock, not 10 s."""
    if database.dialect != "sqlite":
        pytest.skip("'database is locked' is SQLite's; PostgreSQL waits on row locks (the deadlock test above)")
    db = Database(database.url)
    event.listen(db.engine, "connect", lambda conn, _: conn.execute("PRAGMA busy_timeout=200"))
    yield create_app(app.state.settings, db)
    db.dispose()


def _hold_write_lock(database: Database, tenant_id: str) -> Any:
    conn = database.engine.connect()
    conn.execute(text("UPDATE tenants SET name = name WHERE id = :t"), {"t": tenant_id})  # BEGIN IMMEDIATE
    return conn


def test_a_request_that_found_sqlite_locked_is_run_again_and_answers_2xx(impatient, database, tenant):
    buyer(tenant.client, "B1")
    before = retries("busy")
    holder = _hold_write_lock(database, tenant.id)
    try:
        request = InThread(impatient, tenant.key, "PUT", "/v1/invoices/I1", json=INVOICE)
        wait_for(lambda: retries("busy") > before, "a first attempt to find the database locked")
    finally:
        holder.commit()
        holder.close()
    response = request.result()
    assert response.status_code == 201, response.text
    assert ok(tenant.client.get("/v1/invoices/I1"))["amount"] == "100.00"


def test_when_every_re_run_fails_the_answer_is_a_503_with_retry_after_and_nothing_is_written(
        impatient, database, tenant):
    buyer(tenant.client, "B1")
    before = retries("busy")
    holder = _hold_write_lock(database, tenant.id)
    try:
        with TestClient(impatient, headers={"Authorization": f"Bearer {tenant.key}"}) as c:
            response = c.post("/v1/invoices/batch", json={"items": [INVOICE | {"invoice_ref": "I2"}]},
                              headers={"Idempotency-Key": "k1"})
    finally:
        holder.commit()
        holder.close()
    assert response.status_code == 503, response.text
    assert response.headers["retry-after"] == "1"
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["type"].endswith("/database-unavailable")
    assert retries("busy") == before + RETRIES
    assert tenant.client.get("/v1/invoices/I2").status_code == 404
    # The key was not used up: the same request, sent again now, runs.
    again = tenant.client.post("/v1/invoices/batch", json={"items": [INVOICE | {"invoice_ref": "I2"}]},
                               headers={"Idempotency-Key": "k1"})
    assert ok(again)["created"] == 1 and "idempotent-replayed" not in again.headers
