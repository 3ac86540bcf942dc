"""One small book of every object kind, posted through the API, its refs and ids marked by a prefix.

The isolation and pagination tests seed it in two tenants (`ALPHA`, `BRAVO`): the same shapes, so the same counts
in every list, and a marker that says whose row a response holds.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from fastapi.testclient import TestClient

from tests.helpers import PRIMARY, TOP_UP, buyer, invoice, limit, ok, payment


@dataclass
class Book:
    """What a tenant's book holds, by path parameter name (the values its routes take)."""

    prefix: str
    read_key: str = ""
    params: dict[str, str] = field(default_factory=dict)
    ids: dict[str, set[Any]] = field(default_factory=dict)  # list path -> the ids its items have


def seed_book(api: TestClient, prefix: str) -> Book:
    b1, b2 = f"{prefix}-B1", f"{prefix}-B2"
    wt, tu = f"{prefix}-WT", f"{prefix}-TU"
    ok(api.put(f"/v1/policies/{wt}", json=PRIMARY))
    ok(api.put(f"/v1/policies/{tu}", json={**TOP_UP, "primary_policy_ref": wt}))
    buyer(api, b1, "FR", name=f"{prefix} buyer one")
    buyer(api, b2, "DE", name=f"{prefix} buyer two")
    limit(api, "1000.00", "2026-01-01", buyer_ref=b1, policy=wt)
    limit(api, "20000.00", "2026-01-01", buyer_ref=b2, policy=wt)
    ok(api.put("/v1/country-limits/FR", json={"amount": "500000.00", "currency": "EUR", "policy_ref": wt}))
    ok(api.put("/v1/country-limits/DE", json={"amount": "400000.00", "currency": "EUR", "policy_ref": wt}))
    ok(api.put("/v1/fx-rates", json={"rates": [
        {"date": "2026-03-19", "base": "EUR", "quote": "USD", "rate": "1.10"},
        {"date": "2026-03-20", "base": "EUR", "quote": "USD", "rate": "1.12"}]}))
    # Above B1's limit (alerts), due 2026-02-15: its claim deadline (60 days) falls within the next 30 days.
    invoice(api, f"{prefix}-INV1", "5000.00", "2026-01-20", "2026-02-15", buyer_ref=b1)
    invoice(api, f"{prefix}-INV2", "3000.00", "2026-02-10", "2026-02-20", buyer_ref=b1)
    invoice(api, f"{prefix}-INV3", "2000.00", "2026-03-01", "2026-04-30", buyer_ref=b2)
    invoice(api, f"{prefix}-CN1", "100.00", "2026-03-02", "2026-03-02", buyer_ref=b2, kind="credit_note",
            applies_to=f"{prefix}-INV3")
    payment(api, f"{prefix}-PAY1", "100.00", buyer_ref=b2)
    payment(api, f"{prefix}-PAY2", "50.00", buyer_ref=b2)
    ok(api.post("/v1/claims", json={"buyer_ref": b1, "invoice_refs": [f"{prefix}-INV2"], "filed_on": "2026-03-20"}),
       201)
    read_key = ok(api.post("/v1/api-keys", json={"name": f"{prefix} dashboard", "scope": "read"}), 201)
    endpoints = [ok(api.post("/v1/webhook-endpoints", json={"url": f"http://127.0.0.1:9/{prefix}/{n}",
                                                             "description": f"{prefix} receiver {n}"}), 201)
                 for n in (1, 2)]
    ok(api.post(f"/v1/webhook-endpoints/{endpoints[0]['id']}/test"), 202)
    # A background revaluation: with no buyer revalued in the request, a settings change answers 202.
    settings = api.app.state.settings  # type: ignore[attr-defined]
    inline, settings.inline_revaluation_max_buyers = settings.inline_revaluation_max_buyers, 0
    try:
        revaluation = ok(api.put("/v1/settings", json={"utilisation_threshold": "0.85"}), 202)
    finally:
        settings.inline_revaluation_max_buyers = inline

    book = Book(prefix, read_key=read_key["key"])
    alerts = ok(api.get("/v1/alerts", params={"limit": 1000}))["items"]
    deliveries = ok(api.get("/v1/webhook-deliveries", params={"limit": 1000}))["items"]
    assert alerts and deliveries
    book.params = {
        "buyer_ref": b1, "invoice_ref": f"{prefix}-INV1", "credit_note_ref": f"{prefix}-CN1",
        "payment_ref": f"{prefix}-PAY1", "policy_ref": wt, "alert_id": str(alerts[0]["id"]),
        "delivery_id": str(deliveries[0]["id"]), "endpoint_id": endpoints[0]["id"], "key_id": read_key["id"],
        "revaluation_id": revaluation["id"],
    }
    book.ids = {
        "/v1/alerts": {a["id"] for a in alerts},
        "/v1/webhook-deliveries": {d["id"] for d in deliveries},
        "/v1/claims": {c["id"] for c in ok(api.get("/v1/claims"))["items"]},
        "/v1/webhook-endpoints": {e["id"] for e in endpoints},
        "/v1/api-keys": {k["id"] for k in ok(api.get("/v1/api-keys"))["items"]},
    }
    return book
