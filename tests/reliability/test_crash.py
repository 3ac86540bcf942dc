"""Crash: the server is killed (SIGKILL) at random moments during ingest; nothing acknowledged is lost, nothing
runs twice.

A client posts invoices and payments in batches, each with its own Idempotency-Key, to the app under uvicorn
(one process), while another thread kills it with SIGKILL at random moments and starts it again. A batch whose
answer was lost (connection cut) or that finds its key still held (409 in progress: the dead process's
transaction not yet rolled back) is sent again with its key until it gets an answer. Afterwards every item of
every acknowledged batch is stored exactly once, every batch answered "created" for each of its items (run
once: either the retry ran it, or it replayed the first run's answer), each buyer's balance is what was sent
to it, and the stored exposure equals a recomputation from scratch (`coverwatch recompute --check`).

Size and seed from the environment; the default (5,000 items) keeps each database well under 90 s. The full
run, on both databases:

    COVERWATCH_CRASH_ITEMS=100000 COVERWATCH_TEST_POSTGRES_URL=postgresql+psycopg://postgres@127.0.0.1:5432/test \\
        uv run --frozen pytest -s tests/reliability/test_crash.py
"""

from __future__ import annotations

import os
import random
import threading
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import text

from app.exposure import jobs
from tests.conftest import VALUATION_DATE
from tests.helpers import buyer, ok
from tests.reliability.server import Server

ITEMS = int(os.environ.get("COVERWATCH_CRASH_ITEMS", "5000"))
SEED = int(os.environ.get("COVERWATCH_CRASH_SEED", "20261122"))
BATCH = 250 if ITEMS <= 10_000 else 1000
BUYERS = [f"C{n:02d}" for n in range(40)]


def _batches(rng: random.Random) -> list[tuple[str, list[dict[str, Any]]]]:
    """Three invoice batches, then one of payments, and so on: ITEMS items in all."""
    out: list[tuple[str, list[dict[str, Any]]]] = []
    made = 0
    while made < ITEMS:
        size = min(BATCH, ITEMS - made)
        n = len(out)
        if n % 4 == 3:
            items = [{"payment_ref": f"P{n}-{k}", "buyer_ref": rng.choice(BUYERS), "currency": "EUR",
                      "amount": f"{rng.randint(1, 40)}.{rng.randint(0, 99):02d}", "received_on": "2026-03-15"}
                     for k in range(size)]
            out.append(("payments", items))
        else:
            items = [{"invoice_ref": f"F{n}-{k}", "buyer_ref": rng.choice(BUYERS), "currency": "EUR",
                      "amount": f"{rng.randint(50, 900)}.{rng.randint(0, 99):02d}", "issue_date": "2026-03-01",
                      "due_date": "2026-04-30"} for k in range(size)]
            out.append(("invoices", items))
        made += size
    return out


class Killer(threading.Thread):
    """Kills the server at a random moment and starts it again, until told to stop. Between two kills it waits
    for one to three batches to be answered: the client always progresses, however long a batch takes."""

    def __init__(self, server: Server, rng: random.Random) -> None:
        super().__init__()
        self.server, self.rng = server, rng
        self.done = threading.Event()
        self.answered = threading.Semaphore(0)
        self.kills = 0
        self.error: BaseException | None = None

    def _answers(self, count: int) -> bool:
        for _ in range(count):
            while not self.answered.acquire(timeout=0.2):
                if self.done.is_set():
                    return False
        return True

    def run(self) -> None:
        try:
            while self._answers(self.rng.randint(1, 3)) and not self.done.wait(self.rng.uniform(0, 2.0)):
                self.server.kill()
                self.kills += 1
                self.server.start()
        except BaseException as exc:  # reported by the test
            self.error = exc


def _send(client: httpx.Client, path: str, key: str, items: list[dict[str, Any]], rng: random.Random,
          stats: dict[str, int]) -> Any:
    """POST until answered: a cut connection, a client that gave up waiting, or a key still held is sent again,
    with the same key."""
    deadline = time.monotonic() + 120
    while True:
        assert time.monotonic() < deadline, f"batch {key} never answered"
        # Now and then the client gives up waiting: the first run goes on and commits, the retry replays it.
        timeout = rng.uniform(0.05, 1.0) if rng.random() < 0.3 else 60.0
        try:
            response = client.post(path, json={"items": items}, headers={"Idempotency-Key": key}, timeout=timeout)
        except httpx.TransportError:
            stats["lost"] += 1
            time.sleep(0.1)
            continue
        if response.status_code == 409 and response.json()["type"].endswith("/idempotency-in-progress"):
            stats["in_progress"] += 1
            time.sleep(0.1)
            continue
        assert response.status_code == 200, f"{key}: {response.status_code} {response.text}"
        stats["replayed"] += response.headers.get("idempotent-replayed") == "true"
        return response.json()


def test_sigkill_during_ingest_loses_nothing_acknowledged_and_runs_nothing_twice(
        app, database, make_tenant, tmp_path: Path):
    tenant = make_tenant()
    api = tenant.client
    for ref in BUYERS:
        buyer(api, ref)
    rng = random.Random(SEED)
    batches = _batches(rng)
    server = Server(database.url, VALUATION_DATE, log=tmp_path / "uvicorn.log")
    server.start()
    killer = Killer(server, random.Random(SEED + 1))
    client_rng = random.Random(SEED + 2)
    stats = {"lost": 0, "in_progress": 0, "replayed": 0}
    answers = []
    started = time.monotonic()
    try:
        with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {tenant.key}"},
                          timeout=60) as client:
            killer.start()
            for n, (kind, items) in enumerate(batches):
                answers.append(_send(client, f"/v1/{kind}/batch", f"crash-{n}", items, client_rng, stats))
                killer.answered.release()
    finally:
        killer.done.set()
        killer.join(120)
        server.stop()
    assert killer.error is None, killer.error
    print(f"\n{ITEMS} items in {len(batches)} batches, {time.monotonic() - started:.1f} s; {killer.kills} kills, "
          f"{stats}")

    # Every batch ran once: each item answered "created" (by the run, or by the replay of the first run's answer).
    for (kind, items), answer in zip(batches, answers, strict=True):
        assert answer["created"] == len(items), (kind, {k: v for k, v in answer.items() if k != "items"})
    invoices = [i for kind, items in batches if kind == "invoices" for i in items]
    payments = [p for kind, items in batches if kind == "payments" for p in items]
    with database.engine.connect() as conn:
        stored = dict(conn.execute(text("SELECT ref, count(*) FROM invoices WHERE tenant_id = :t GROUP BY ref"),
                                   {"t": tenant.id}).all())
        assert stored == {i["invoice_ref"]: 1 for i in invoices}
        stored = dict(conn.execute(text("SELECT ref, count(*) FROM payments WHERE tenant_id = :t GROUP BY ref"),
                                   {"t": tenant.id}).all())
        assert stored == {p["payment_ref"]: 1 for p in payments}
    for ref in BUYERS:
        billed = sum((Decimal(i["amount"]) for i in invoices if i["buyer_ref"] == ref), Decimal(0))
        paid = sum((Decimal(p["amount"]) for p in payments if p["buyer_ref"] == ref), Decimal(0))
        assert Decimal(ok(api.get(f"/v1/buyers/{ref}"))["balances"][0]["balance"]) == billed - paid, ref
    assert jobs.recompute(database, app.state.settings, tenant_id=tenant.id, check_only=True) == []
