"""The incremental path equals a recomputation from scratch, whatever the sequence of changes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.exposure import jobs
from app.tenants.service import create_tenant
from tests.helpers import PRIMARY, TOP_UP

BUYERS = [("B1", "FR"), ("B2", "DE"), ("B3", "US")]
cents = st.integers(min_value=100, max_value=20_000_000).map(lambda c: f"{c // 100}.{c % 100:02d}")
day = st.integers(min_value=1, max_value=28)
month = st.integers(min_value=1, max_value=4)
buyer_ref = st.sampled_from([b for b, _ in BUYERS])

op = st.one_of(
    st.tuples(st.just("invoice"), buyer_ref, cents, month, day, st.integers(0, 150), st.sampled_from(["EUR", "USD"])),
    st.tuples(st.just("credit"), buyer_ref, cents, month, day),
    st.tuples(st.just("pay"), buyer_ref, cents, day),
    st.tuples(st.just("reverse"), st.integers(0, 20)),
    st.tuples(st.just("limit"), buyer_ref, st.sampled_from(["P", "T", "S"]),
              st.sampled_from(["granted", "reduced", "withdrawn", "refused"]), cents, month, day),
    st.tuples(st.just("fx"), st.integers(80, 150), day),
    st.tuples(st.just("policy"), st.booleans()),
    st.tuples(st.just("country"), buyer_ref, st.sampled_from(["FR", "DE", "US", "IT"])),
)


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(op, min_size=1, max_size=30))
def test_incremental_equals_recompute_from_scratch(app, database, ops):
    with database.session() as session, session.begin():
        tenant, key = create_tenant(session, "random", "EUR")
    api = TestClient(app, headers={"Authorization": f"Bearer {key}"}, raise_server_exceptions=False)
    assert api.put("/v1/policies/P", json=PRIMARY | {"max_extension_days": 45}).status_code == 201
    assert api.put("/v1/policies/T", json=TOP_UP | {"countries": ["FR", "IT"]}).status_code == 201
    sub = TOP_UP | {"mode": "substitute", "currency": "USD", "indemnity_rate": "0.75"}
    assert api.put("/v1/policies/S", json=sub).status_code == 201
    for ref, country in BUYERS:
        assert api.put(f"/v1/buyers/{ref}", json={"name": ref, "country": country}).status_code == 201
    payments: list[str] = []
    for n, o in enumerate(ops):
        kind = o[0]
        if kind in ("invoice", "credit"):
            b, amount, m, d = o[1:5]
            terms = o[5] if kind == "invoice" else 0
            currency = o[6] if kind == "invoice" else "EUR"
            issue = f"2026-{m:02d}-{d:02d}"
            due = (__import__("datetime").date.fromisoformat(issue) + __import__("datetime").timedelta(days=terms))
            r = api.put(f"/v1/invoices/D{n}", json={
                "buyer_ref": b, "kind": "invoice" if kind == "invoice" else "credit_note", "currency": currency,
                "amount": amount, "issue_date": issue, "due_date": due.isoformat()})
            assert r.status_code == 201, r.text
        elif kind == "pay":
            r = api.put(f"/v1/payments/P{n}", json={"buyer_ref": o[1], "amount": o[2], "currency": "EUR",
                                                    "received_on": f"2026-03-{o[3]:02d}"})
            assert r.status_code == 201, r.text
            payments.append(f"P{n}")
        elif kind == "reverse" and payments:
            assert api.delete(f"/v1/payments/{payments[o[1] % len(payments)]}").status_code == 200
        elif kind == "limit":
            b, policy, status, amount, m, d = o[1:]
            body = {"buyer_ref": b, "status": status, "effective_from": f"2026-{m:02d}-{d:02d}"}
            if status in ("granted", "reduced"):
                body["amount"] = amount
            assert api.post(f"/v1/policies/{policy}/limits", json=body).status_code == 201
        elif kind == "fx":
            r = api.put("/v1/fx-rates", json={"rates": [{"date": f"2026-03-{o[2]:02d}", "base": "EUR",
                                                         "quote": "USD", "rate": f"{o[1] / 100}"}]})
            assert r.status_code == 200, r.text
        elif kind == "policy":
            body = PRIMARY | {"max_extension_days": 45 if o[1] else None, "indemnity_rate": "0.85" if o[1] else "0.9"}
            assert api.put("/v1/policies/P", json=body).status_code == 200
        elif kind == "country":
            assert api.put(f"/v1/buyers/{o[1]}", json={"name": o[1], "country": o[2]}).status_code == 200
    assert jobs.recompute(database, app.state.settings, tenant_id=tenant.id, check_only=True) == []
    api.close()


def test_cli_recompute_check_finds_tampering_and_recompute_repairs(tmp_path: Path):
    env = {**os.environ, "COVERWATCH_DATABASE_URL": f"sqlite:///{tmp_path / 'cw.db'}",
           "COVERWATCH_TODAY": "2026-03-20"}
    cli = [sys.executable, "-m", "app.cli"]

    def run(*args: str, code: int = 0) -> str:
        p = subprocess.run([*cli, *args], env=env, capture_output=True, text=True, timeout=120)
        assert p.returncode == code, p.stdout + p.stderr
        return p.stdout

    run("migrate")
    out = run("tenants", "create", "--name", "Acme SAS", "--currency", "EUR")
    key = next(line.split(": ")[1] for line in out.splitlines() if line.startswith("admin_key"))
    from app.core.config import Settings
    from app.core.db import Database
    from app.main import create_app

    db = Database(env["COVERWATCH_DATABASE_URL"])
    app = create_app(Settings(database_url=db.url, today="2026-03-20", scheduler_enabled=False), db)
    with TestClient(app, headers={"Authorization": f"Bearer {key}"}) as api:
        assert api.put("/v1/policies/P", json=PRIMARY).status_code == 201
        assert api.put("/v1/buyers/B1", json={"name": "B1", "country": "FR"}).status_code == 201
        assert api.post("/v1/policies/P/limits", json={"buyer_ref": "B1", "status": "granted", "amount": "1000.00",
                                                       "effective_from": "2026-01-01"}).status_code == 201
        assert api.put("/v1/invoices/I1", json={"buyer_ref": "B1", "currency": "EUR", "amount": "1500.00",
                                                "issue_date": "2026-02-01", "due_date": "2026-03-01"}
                       ).status_code == 201
    assert "matches" in run("recompute", "--check")
    with db.engine.begin() as conn:
        conn.exec_driver_sql("UPDATE buyer_exposures SET uncovered = 0")
    assert "uncovered" in run("recompute", "--check", code=1)
    run("recompute")
    run("recompute", "--check")
    db.dispose()
