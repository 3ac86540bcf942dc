"""Small builders shared by the tests: they post through the API like an ERP would."""

from __future__ import annotations

import socket
from decimal import Decimal
from typing import Any

from fastapi.testclient import TestClient

# COVERWATCH_SECRET_KEY of the test apps (webhook secrets are encrypted with it).
TEST_SECRET_KEY = "test-secret-key-for-webhook-secrets-0123456789"


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now (for a server a test starts)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def ok(response: Any, *codes: int) -> Any:
    expected = codes or (200, 201)
    assert response.status_code in expected, f"{response.status_code}: {response.text}"
    return response.json() if response.content else None


def buyer(api: TestClient, ref: str = "B1", country: str = "FR", name: str | None = None) -> dict:
    return ok(api.put(f"/v1/buyers/{ref}", json={"name": name or f"Buyer {ref}", "country": country}))


def invoice(
    api: TestClient, ref: str, amount: str, issue: str, due: str, buyer_ref: str = "B1",
    currency: str = "EUR", kind: str = "invoice", applies_to: str | None = None,
) -> dict:
    body: dict[str, Any] = {
        "buyer_ref": buyer_ref, "kind": kind, "currency": currency, "amount": amount,
        "issue_date": issue, "due_date": due,
    }
    if applies_to:
        body["applies_to"] = applies_to
    return ok(api.put(f"/v1/invoices/{ref}", json=body))


def payment(
    api: TestClient, ref: str, amount: str, buyer_ref: str = "B1", received_on: str = "2026-03-01",
    currency: str = "EUR", allocations: list[dict] | None = None, expect: tuple[int, ...] = (200, 201),
) -> dict:
    body: dict[str, Any] = {"buyer_ref": buyer_ref, "amount": amount, "currency": currency,
                            "received_on": received_on}
    if allocations is not None:
        body["allocations"] = allocations
    return ok(api.put(f"/v1/payments/{ref}", json=body), *expect)


def open_balance(api: TestClient, ref: str) -> Decimal:
    return Decimal(ok(api.get(f"/v1/invoices/{ref}"))["open_balance"])


PRIMARY = {
    "insurer": "Allianz Trade", "kind": "whole_turnover", "currency": "EUR", "starts_on": "2026-01-01",
    "ends_on": "2026-12-31", "indemnity_rate": "0.90", "max_credit_period_days": 120, "claim_deadline_days": 60,
}
TOP_UP = {
    "insurer": "Coface", "kind": "top_up", "currency": "EUR", "starts_on": "2026-01-01", "ends_on": "2026-12-31",
    "indemnity_rate": "0.90", "primary_policy_ref": "P", "mode": "complement", "ratio": "1.0",
}


def domain_policies(api: TestClient, top_up: dict | None = None, primary: dict | None = None) -> None:
    """The DOMAIN.md worked-examples set-up: primary P and complement Top Up T, both EUR 2026 at 0.90."""
    ok(api.put("/v1/policies/P", json=primary or PRIMARY))
    if top_up is not False:
        ok(api.put("/v1/policies/T", json=top_up or TOP_UP))


def limit(api: TestClient, amount: str | None, effective: str, buyer_ref: str = "B1", policy: str = "P",
          status: str = "granted", **extra: Any) -> dict:
    body: dict[str, Any] = {"buyer_ref": buyer_ref, "status": status, "effective_from": effective, **extra}
    if amount is not None:
        body["amount"] = amount
    return ok(api.post(f"/v1/policies/{policy}/limits", json=body), 201)


def exposure(api: TestClient, buyer_ref: str = "B1") -> dict:
    return ok(api.get(f"/v1/exposure/buyers/{buyer_ref}"))
