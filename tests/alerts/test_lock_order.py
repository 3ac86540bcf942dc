"""One lock order everywhere: buyers (by id) before the tenant row. Settings changes used to lock the tenant
row, then every buyer, while ingest locks its buyers, then the tenant row (the ETag version): concurrent
settings and ingest deadlocked on PostgreSQL (a 503)."""

from __future__ import annotations

import threading

from tests.helpers import buyer, domain_policies, limit, ok

BUYERS = [f"B{i}" for i in range(8)]


def test_settings_changes_and_ingest_run_together_without_a_5xx(make_tenant, database):
    tenant = make_tenant()
    api = tenant.client
    domain_policies(api)
    for ref in BUYERS:
        buyer(api, ref)
        limit(api, "50000.00", "2026-01-01", buyer_ref=ref)
    statuses: dict[str, list[int]] = {"settings": [], "ingest": [], "payments": []}
    start = threading.Barrier(3)
    rounds = 12

    def settings(client) -> None:
        start.wait()
        for n in range(rounds):
            r = client.put("/v1/settings", json={"utilisation_threshold": "0.8" if n % 2 else "0.9"})
            statuses["settings"].append(r.status_code)

    def ingest(client) -> None:
        start.wait()
        for n in range(rounds):
            # Buyers in descending order in the body: the service must still lock them by id.
            items = [{"invoice_ref": f"F{n}-{ref}", "buyer_ref": ref, "currency": "EUR", "amount": "1000.00",
                      "issue_date": "2026-03-01", "due_date": "2026-04-30"} for ref in reversed(BUYERS)]
            statuses["ingest"].append(client.post("/v1/invoices/batch", json={"items": items}).status_code)

    def payments(client) -> None:
        start.wait()
        for n in range(rounds):
            items = [{"payment_ref": f"P{n}-{ref}", "buyer_ref": ref, "currency": "EUR", "amount": "100.00",
                      "received_on": "2026-03-10"} for ref in (BUYERS[::-1] if n % 2 else BUYERS)]
            statuses["payments"].append(client.post("/v1/payments/batch", json={"items": items}).status_code)

    from fastapi.testclient import TestClient

    own = [TestClient(api.app, headers=dict(api.headers), raise_server_exceptions=False) for _ in range(3)]
    threads = [threading.Thread(target=fn, args=(c,)) for fn, c in zip((settings, ingest, payments), own,
                                                                         strict=True)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for c in own:
        c.close()
    assert statuses == {k: [200] * rounds for k in statuses}
    # And the result is what a sequential run gives: every invoice and payment stored, rows consistent.
    e = ok(api.get("/v1/exposure"))
    assert e["outstanding"] == f"{len(BUYERS) * rounds * 1000 - len(BUYERS) * rounds * 100:.2f}"
    assert ok(api.get("/v1/settings"))["utilisation_threshold"] in ("0.8", "0.9")
