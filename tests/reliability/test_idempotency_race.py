"""Two requests with one Idempotency-Key at the same instant: exactly one runs (app.core.idempotency).

The other gets the replay of the first's response (when the first has committed) or a 409
`idempotency-in-progress` with Retry-After (while it runs): never a second execution, a 500 or an integrity
error. On SQLite the twin waits for the write lock and replays.
"""

from __future__ import annotations

import threading

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from tests.helpers import buyer, ok
from tests.reliability.test_deadlocks import InThread, wait_for


def _items(round_: int) -> list[dict]:
    return [{"invoice_ref": f"R{round_}-{n}", "buyer_ref": f"B{n % 2}", "currency": "EUR", "amount": "10.00",
             "issue_date": "2026-03-01", "due_date": "2026-04-30"} for n in range(3)]


def _in_progress(response: httpx.Response) -> bool:
    return (response.status_code == 409 and response.json()["type"].endswith("/idempotency-in-progress")
            and response.headers["retry-after"] == "1")


def test_twins_sent_at_the_same_instant_run_once(app, database, tenant):
    api = tenant.client
    buyer(api, "B0")
    buyer(api, "B1")
    twins, rounds = 6, 10
    clients = [TestClient(app, headers={"Authorization": f"Bearer {tenant.key}"}, raise_server_exceptions=False)
               for _ in range(twins)]
    barrier = threading.Barrier(twins)
    answers: list[list[httpx.Response]] = [[] for _ in range(rounds)]

    def send(client: TestClient) -> None:
        for r in range(rounds):
            barrier.wait()
            answers[r].append(client.post("/v1/invoices/batch", json={"items": _items(r)},
                                          headers={"Idempotency-Key": f"twin-{r}"}))

    threads = [threading.Thread(target=send, args=(c,)) for c in clients]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    for c in clients:
        c.close()
    for responses in answers:
        assert len(responses) == twins
        executed = [x for x in responses if x.status_code == 200 and "idempotent-replayed" not in x.headers]
        replayed = [x for x in responses if x.status_code == 200 and x.headers.get("idempotent-replayed") == "true"]
        waiting = [x for x in responses if _in_progress(x)]
        assert len(executed) == 1, [(x.status_code, x.text) for x in responses]
        assert len(executed) + len(replayed) + len(waiting) == twins, [(x.status_code, x.text) for x in responses]
        assert executed[0].json()["created"] == 3
        assert all(x.json() == executed[0].json() for x in replayed)
        if database.dialect == "sqlite":
            assert not waiting  # the write lock queues the twins behind the first: they replay
    invoices = ok(api.get("/v1/invoices", params={"limit": 500}))["items"]
    sent = [i["invoice_ref"] for r in range(rounds) for i in _items(r)]
    assert sorted(i["invoice_ref"] for i in invoices) == sorted(sent)
    assert ok(api.get("/v1/buyers/B0"))["balances"][0]["balance"] == f"{rounds * 20}.00"


def test_a_twin_of_a_running_request_gets_409_in_progress_then_the_replay(app, database, tenant):
    if database.dialect != "postgresql":
        pytest.skip("on SQLite a twin cannot start while the first runs (one writer at a time)")
    api = tenant.client
    buyer(api, "B0")
    buyer(api, "B1")
    body = {"items": _items(0)}
    with database.engine.connect() as other, database.engine.connect() as watcher:
        pid = other.execute(text("SELECT pg_backend_pid()")).scalar()
        other.execute(text("SELECT id FROM buyers WHERE tenant_id = :t FOR UPDATE"), {"t": tenant.id})
        first = InThread(app, tenant.key, "POST", "/v1/invoices/batch", json=body, headers={"Idempotency-Key": "k"})

        def first_is_running() -> bool:
            blocked = watcher.execute(text("SELECT count(*) FROM pg_stat_activity "
                                           "WHERE :pid = ANY(pg_blocking_pids(pid))"), {"pid": pid}).scalar()
            watcher.rollback()
            return bool(blocked)

        wait_for(first_is_running, "the first request to hold the key and wait for the buyers")
        sent = InThread(app, tenant.key, "POST", "/v1/invoices/batch", json=body, headers={"Idempotency-Key": "k"})
        sent.thread.join(10)  # answered at once, not queued behind the first
        other.commit()
    twin = sent.result()
    assert _in_progress(twin), twin.text
    assert twin.json()["errors"][0]["pointer"] == "/headers/Idempotency-Key"
    executed = first.result()
    assert ok(executed)["created"] == 3 and "idempotent-replayed" not in executed.headers
    again = api.post("/v1/invoices/batch", json=body, headers={"Idempotency-Key": "k"})
    assert again.status_code == 200 and again.headers["idempotent-replayed"] == "true"
    assert again.json() == executed.json()
    # Another body with the key: 422, as ever.
    other_body = api.post("/v1/invoices/batch", json={"items": _items(1)}, headers={"Idempotency-Key": "k"})
    assert other_body.status_code == 422
    assert len(ok(api.get("/v1/invoices"))["items"]) == 3
