"""Two app instances (live uvicorn, scheduler on) against one PostgreSQL: every event is delivered,
within seconds, and none twice."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections import Counter

import httpx
import pytest
from sqlalchemy import func, select

from app.tenants.service import create_tenant
from app.webhooks.models import WebhookDelivery
from tests.helpers import PRIMARY, TEST_SECRET_KEY, free_port


def _start(database_url: str, port: int) -> subprocess.Popen:
    env = {**os.environ, "COVERWATCH_DATABASE_URL": database_url, "COVERWATCH_TODAY": "2026-03-20",
           "COVERWATCH_WEBHOOK_ALLOWED_NETWORKS": "127.0.0.0/8",
           "COVERWATCH_SECRET_KEY": TEST_SECRET_KEY, "COVERWATCH_DISPATCH_INTERVAL_SECONDS": "0.2",
           "COVERWATCH_SCHEDULER_ENABLED": "true", "COVERWATCH_LOG_LEVEL": "WARNING"}
    return subprocess.Popen([sys.executable, "-m", "app.cli", "serve", "--port", str(port), "--no-migrate"],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def _wait_ready(url: str, proc: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else "exited"
        try:
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"{url} not ready")


def test_two_replicas_never_send_an_event_twice(database_url, database, receiver):
    if not database_url.startswith("postgresql"):
        pytest.skip("replicas share one PostgreSQL; SQLite runs in one process")
    with database.session() as session, session.begin():
        tenant, key = create_tenant(session, "replicas", "EUR")
    ports = [free_port(), free_port()]
    procs = [_start(database_url, p) for p in ports]
    urls = [f"http://127.0.0.1:{p}" for p in ports]
    try:
        for url, proc in zip(urls, procs, strict=True):
            _wait_ready(url, proc)
        headers = {"Authorization": f"Bearer {key}"}
        a, b = (httpx.Client(base_url=u, headers=headers, timeout=30) for u in urls)
        secret = a.post("/v1/webhook-endpoints", json={"url": receiver.url}).json()["secret"]
        # Writes alternate between the replicas: 30 buyers, each with exposure and no limit (no_cover).
        for n in range(30):
            client = a if n % 2 else b
            assert client.put(f"/v1/buyers/B{n}", json={"name": f"B{n}", "country": "FR"}).status_code == 201
            r = client.put(f"/v1/invoices/I{n}", json={"buyer_ref": f"B{n}", "currency": "EUR", "amount": "10.00",
                                                       "issue_date": "2026-02-01", "due_date": "2026-03-01"})
            assert r.status_code == 201
        with database.session() as s:
            expected = s.scalar(select(func.count()).select_from(WebhookDelivery)
                                .where(WebhookDelivery.tenant_id == tenant.id))
        assert expected == 30
        assert receiver.wait_for(lambda r: len(r.received) >= expected, timeout=30), len(receiver.received)
        time.sleep(1.0)  # give a would-be duplicate the time to arrive
        counts = Counter(r.id for r in receiver.received)
        assert len(counts) == expected and max(counts.values()) == 1
        events = receiver.verified(secret)
        assert sorted(e["data"]["buyer_ref"] for e in events) == sorted(f"B{n}" for n in range(30))
        with database.session() as s:
            attempts = s.scalars(select(WebhookDelivery.attempts).where(WebhookDelivery.tenant_id == tenant.id)).all()
        assert attempts == [1] * expected

        # Over cover, then a payment: the credit manager hears of both, signed, within seconds.
        assert b.put("/v1/policies/P", json=PRIMARY).status_code == 201
        assert a.post("/v1/policies/P/limits", json={"buyer_ref": "B0", "status": "granted", "amount": "100.00",
                                                     "effective_from": "2026-01-01"}).status_code == 201
        assert b.put("/v1/invoices/BIG", json={"buyer_ref": "B0", "currency": "EUR", "amount": "500.00",
                                               "issue_date": "2026-03-01", "due_date": "2026-04-30"}
                     ).status_code == 201

        def alert_event(kind: str, alert_type: str):  # type: ignore[no-untyped-def]
            return lambda r: any(x.json["type"] == kind and x.json["data"]["type"] == alert_type
                                 and x.json["data"]["buyer_ref"] == "B0" for x in r.received)

        assert receiver.wait_for(alert_event("alert.opened", "exposure_above_cover"), timeout=15)
        assert a.put("/v1/payments/PAY", json={"buyer_ref": "B0", "amount": "410.00", "currency": "EUR",
                                               "received_on": "2026-03-20"}).status_code == 201
        assert receiver.wait_for(alert_event("alert.resolved", "exposure_above_cover"), timeout=15)
        receiver.verified(secret)
        counts = Counter(r.id for r in receiver.received)
        assert max(counts.values()) == 1
        a.close()
        b.close()
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(timeout=30)
