"""16 concurrent clients against the app under uvicorn (2 workers): no 5xx, nothing twice, nothing lost.

The clients post overlapping invoice batches (two clients send the same references, in opposite orders),
payment batches (buyers shuffled in each), limit decisions and settings changes, and groups of four send one
Idempotency-Key at the same instant (a barrier). Deadlocks and unique-key races are run again by the server
(app.core.retry), never answered 503 or 409; the only designed refusal is the 409 `idempotency-in-progress`
of a same-key twin. Afterwards the stored rows are exactly what was sent, every balance is the sum of what was
sent, and the stored exposure equals a recomputation from scratch (`coverwatch recompute --check`).
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import text

from app.exposure import jobs
from tests.conftest import VALUATION_DATE
from tests.helpers import buyer, domain_policies, limit, ok
from tests.reliability.server import Server

CLIENTS = 16
ROUNDS = 20  # 320 requests; SQLite, one writer at a time, gets half as many rounds
BUYERS = [f"B{n:02d}" for n in range(12)]
THRESHOLDS = ("0.75", "0.8", "0.85", "0.9")


def _invoice(ref: str, k: int) -> dict[str, Any]:
    """The same reference always carries the same content, whoever sends it."""
    return {"invoice_ref": ref, "buyer_ref": BUYERS[k % len(BUYERS)], "currency": "EUR",
            "amount": f"{100 + k}.00", "issue_date": "2026-03-01", "due_date": "2026-04-30"}


@dataclass
class Sent:
    invoices: dict[str, dict[str, Any]] = field(default_factory=dict)
    payments: dict[str, dict[str, Any]] = field(default_factory=dict)
    decisions: list[str] = field(default_factory=list)
    thresholds: list[str] = field(default_factory=list)
    statuses: Counter[tuple[str, int]] = field(default_factory=Counter)
    created: Counter[str] = field(default_factory=Counter)  # per invoice ref: batches that answered "created"
    twins: list[list[httpx.Response]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def note(self, kind: str, response: httpx.Response) -> None:
        with self.lock:
            self.statuses[(kind, response.status_code)] += 1


def _invoice_batches(client: httpx.Client, n: int, sent: Sent, rounds: int) -> None:
    """Clients 0-3, in pairs: both of a pair send the same references (one of them reversed), and the pairs
    overlap by half."""
    for r in range(rounds):
        start = 15 * (n // 2)
        items = [_invoice(f"I{r}-{k}", k) for k in range(start, start + 30)]
        if n % 2:
            items.reverse()
        response = client.post("/v1/invoices/batch", json={"items": items})
        sent.note("invoices", response)
        if response.status_code == 200:
            with sent.lock:
                sent.invoices.update({i["invoice_ref"]: i for i in items})
                sent.created.update(x["ref"] for x in response.json()["items"] if x["outcome"] == "created")


def _payment_batches(client: httpx.Client, n: int, sent: Sent, rounds: int) -> None:
    rng = random.Random(n)
    for r in range(rounds):
        buyers = BUYERS[:]
        rng.shuffle(buyers)
        items = [{"payment_ref": f"P{n}-{r}-{b}", "buyer_ref": b, "currency": "EUR", "amount": "7.00",
                  "received_on": "2026-03-10"} for b in buyers[:8]]
        response = client.post("/v1/payments/batch", json={"items": items})
        sent.note("payments", response)
        if response.status_code == 200:
            assert response.json()["created"] == len(items), response.text
            with sent.lock:
                sent.payments.update({i["payment_ref"]: i for i in items})


def _decisions(client: httpx.Client, n: int, sent: Sent, rounds: int) -> None:
    rng = random.Random(n)
    for r in range(rounds):
        ref = f"L{n}-{r}"
        response = client.post("/v1/policies/P/limits", json={
            "buyer_ref": rng.choice(BUYERS), "status": "granted", "amount": f"{rng.randint(20, 90)}000.00",
            "effective_from": f"2026-02-{r + 1:02d}", "decision_ref": ref})
        sent.note("decisions", response)
        if response.status_code == 201:
            with sent.lock:
                sent.decisions.append(ref)


def _settings(client: httpx.Client, n: int, sent: Sent, rounds: int) -> None:
    for r in range(rounds):
        value = THRESHOLDS[(n + r) % len(THRESHOLDS)]
        response = client.put("/v1/settings", json={"utilisation_threshold": value})
        sent.note("settings", response)
        if response.status_code == 200:
            with sent.lock:
                sent.thresholds.append(value)


def _twins(barrier: threading.Barrier) -> Any:
    """Clients 12-15: each round, the four send one Idempotency-Key and body at the same instant."""

    def run(client: httpx.Client, n: int, sent: Sent, rounds: int) -> None:
        for r in range(rounds):
            items = [_invoice(f"T{r}-{k}", k) for k in range(10)]
            barrier.wait()
            response = client.post("/v1/invoices/batch", json={"items": items},
                                   headers={"Idempotency-Key": f"twin-{r}"})
            sent.note("twins", response)
            with sent.lock:
                sent.twins[r].append(response)
                if response.status_code == 200:
                    sent.invoices.update({i["invoice_ref"]: i for i in items})

    return run


def _stored(database: Any, tenant_id: str, sql: str) -> list[Any]:
    with database.engine.connect() as conn:
        return list(conn.execute(text(sql), {"t": tenant_id}))


def test_sixteen_clients_no_5xx_no_duplicate_no_lost_update(app, database, make_tenant, tmp_path: Path):
    tenant = make_tenant()
    api = tenant.client
    domain_policies(api)
    for ref in BUYERS:
        buyer(api, ref)
        limit(api, "50000.00", "2026-01-01", buyer_ref=ref)
    server = Server(database.url, VALUATION_DATE, workers=2, log=tmp_path / "uvicorn.log",
                    env={"PROMETHEUS_MULTIPROC_DIR": str(tmp_path)})
    rounds = ROUNDS if database.dialect == "postgresql" else ROUNDS // 2
    sent = Sent(twins=[[] for _ in range(rounds)])
    roles = [_invoice_batches] * 4 + [_payment_batches] * 4 + [_decisions] * 2 + [_settings] * 2
    roles += [_twins(threading.Barrier(4))] * 4
    assert len(roles) == CLIENTS
    failures: list[BaseException] = []
    server.start()
    try:
        clients = [httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {tenant.key}"},
                                timeout=60) for _ in range(CLIENTS)]

        def run(n: int) -> None:
            try:
                roles[n](clients[n], n, sent, rounds)
            except BaseException as exc:  # reported below, with the others
                failures.append(exc)

        started = time.monotonic()
        threads = [threading.Thread(target=run, args=(n,)) for n in range(CLIENTS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        elapsed = time.monotonic() - started
        retried = {s.labels["reason"]: s.value for f in text_string_to_metric_families(
            clients[0].get("/metrics").text) for s in f.samples if s.name == "coverwatch_request_retries_total"}
        for c in clients:
            c.close()
    finally:
        server.stop()
    assert not failures, failures
    print(f"\n{sum(sent.statuses.values())} requests in {elapsed:.1f} s; {dict(sent.statuses)}; re-runs {retried}")

    # No 5xx, and every request a success but the designed 409 of a same-key twin.
    expected = {"invoices": 200, "payments": 200, "decisions": 201, "settings": 200}
    assert {k: s for (k, s) in sent.statuses if k != "twins"} == expected, sent.statuses
    for r, responses in enumerate(sent.twins):
        assert len(responses) == 4
        executed = [x for x in responses if x.status_code == 200 and "idempotent-replayed" not in x.headers]
        replayed = [x for x in responses if x.status_code == 200 and x.headers.get("idempotent-replayed") == "true"]
        in_progress = [x for x in responses if x.status_code == 409
                       and x.json()["type"].endswith("/idempotency-in-progress")]
        assert len(executed) == 1, (r, [(x.status_code, x.text) for x in responses])
        assert len(executed) + len(replayed) + len(in_progress) == 4, [(x.status_code, x.text) for x in responses]
        assert executed[0].json()["created"] == 10
        assert all(x.json() == executed[0].json() for x in replayed)

    # Nothing twice: each overlapping reference was created by exactly one batch, and is stored once.
    overlapping = {ref for ref in sent.invoices if ref.startswith("I")}
    assert set(sent.created) == overlapping and set(sent.created.values()) == {1}
    invoices = {ref: (amount, buyer_ref) for ref, amount, buyer_ref in _stored(
        database, tenant.id, "SELECT i.ref, i.amount, b.ref FROM invoices i JOIN buyers b ON b.id = i.buyer_id "
        "WHERE i.tenant_id = :t")}
    assert invoices.keys() == sent.invoices.keys()
    scale = 10_000 if database.dialect == "sqlite" else 1  # SQLite stores money as scaled integers
    assert all(Decimal(invoices[ref][0]) / scale == Decimal(i["amount"]) and invoices[ref][1] == i["buyer_ref"]
               for ref, i in sent.invoices.items())
    payments = {ref for (ref,) in _stored(database, tenant.id, "SELECT ref FROM payments WHERE tenant_id = :t")}
    assert payments == sent.payments.keys() and len(payments) == 4 * rounds * 8
    decisions = [ref for (ref,) in _stored(database, tenant.id, "SELECT decision_ref FROM limit_decisions "
                                                                "WHERE tenant_id = :t AND decision_ref LIKE 'L%'")]
    assert sorted(decisions) == sorted(sent.decisions) and len(decisions) == 2 * rounds

    # No lost update: each buyer's balance is what was sent to it, and every allocation adds up.
    for ref in BUYERS:
        billed = sum((Decimal(i["amount"]) for i in sent.invoices.values() if i["buyer_ref"] == ref), Decimal(0))
        paid = sum((Decimal(p["amount"]) for p in sent.payments.values() if p["buyer_ref"] == ref), Decimal(0))
        balance = ok(api.get(f"/v1/buyers/{ref}"))["balances"][0]
        assert Decimal(balance["balance"]) == billed - paid, ref
        assert Decimal(balance["open_invoices"]) - Decimal(balance["unapplied_credit"]) == billed - paid, ref
    assert _stored(database, tenant.id, """
        SELECT i.ref FROM invoices i LEFT JOIN allocations a ON a.invoice_id = i.id
        WHERE i.tenant_id = :t GROUP BY i.ref, i.amount, i.open_balance
        HAVING i.amount - i.open_balance <> COALESCE(SUM(a.amount), 0)""") == []
    assert _stored(database, tenant.id, """
        SELECT p.ref FROM payments p LEFT JOIN allocations a ON a.payment_id = p.id
        WHERE p.tenant_id = :t GROUP BY p.ref, p.amount, p.unapplied
        HAVING p.amount - p.unapplied <> COALESCE(SUM(a.amount), 0)""") == []
    assert ok(api.get("/v1/settings"))["utilisation_threshold"] in sent.thresholds
    assert len(sent.thresholds) == 2 * rounds
    assert jobs.recompute(database, app.state.settings, tenant_id=tenant.id, check_only=True) == []
