"""DOMAIN.md's rules through the API, on SQLite and PostgreSQL: generated portfolios are posted as an ERP and a
broker would (policies and their endorsements, decisions in recording order, FX rates, invoices with postponed due
dates, payments allocated to them on their dates, claims), and the stored exposure must equal what the
independent oracle (tests/oracle.py) computes. COVERWATCH_API_ORACLE_EXAMPLES sets the number of portfolios."""

from __future__ import annotations

import os
from decimal import Decimal
from typing import Any

from hypothesis import HealthCheck, given, settings

from tests import oracle
from tests.cover.scenarios import scenarios
from tests.helpers import ok

EXAMPLES = int(os.environ.get("COVERWATCH_API_ORACLE_EXAMPLES", "25"))
TOTALS = ("outstanding", "not_due", "overdue_1_30", "overdue_31_60", "overdue_61_90", "overdue_over_90",
          "covered_primary", "covered_top_up", "uncovered", "indemnifiable")


def _s(amount: Decimal | None) -> str | None:
    return None if amount is None else str(amount)


def _policy_body(p: oracle.PolicySpec, t: oracle.Terms, refs: dict[str, oracle.PolicySpec]) -> dict[str, Any]:
    body: dict[str, Any] = {"insurer": "Insurer " + p.ref, "kind": p.kind, "currency": p.currency,
                            "starts_on": p.starts_on.isoformat(), "ends_on": t.ends_on.isoformat(),
                            "indemnity_rate": str(t.indemnity_rate)}
    if p.kind == "top_up":
        body |= {"primary_policy_ref": p.primary_ref, "mode": p.mode, "ratio": str(t.ratio),
                 "per_buyer_cap": _s(t.per_buyer_cap), "countries": sorted(t.scope)}
        if p.mode == "complement":
            body["follows_discretionary"] = t.follows_discretionary
        return body
    body |= {
        "max_credit_period_days": t.max_credit_period_days, "claim_deadline_days": t.claim_deadline_days,
        "max_extension_days": t.max_extension_days, "covered_countries": sorted(t.covered_countries),
        "excluded_countries": sorted(t.excluded_countries),
        "country_overrides": {c: {"max_credit_period_days": m, "claim_deadline_days": d}
                              for c, (m, d) in t.country_overrides.items()},
        "discretionary_limit_max": "1000000",
    }
    if p.kind == "excess_of_loss":
        body["aggregate_first_loss"] = "0"
    return body


def post_scenario(api: Any, s: oracle.Scenario) -> None:
    refs = {p.ref: p for p in s.policies}
    for p in sorted(s.policies, key=lambda p: p.kind == "top_up"):  # primaries first
        for n, t in enumerate(p.versions):
            body = _policy_body(p, t, refs)
            if n:
                body["effective_from"] = t.effective_from.isoformat()
            ok(api.put(f"/v1/policies/{p.ref}", json=body))
    if s.rates:
        day = s.valued_on.isoformat()
        ok(api.put("/v1/fx-rates", json={"rates": [
            {"date": day, "base": b, "quote": q, "rate": str(r)} for (b, q), r in s.rates.items()]}))
    ok(api.put("/v1/buyers/B", json={"name": "Buyer", "country": s.country}))
    for d in sorted(s.decisions, key=lambda d: d.seq):
        body = {"buyer_ref": "B", "status": d.status, "effective_from": d.effective_from.isoformat(),
                "source": d.source}
        if d.status not in ("refused", "withdrawn"):
            body["amount"] = str(d.amount)
        if d.expires_on is not None:
            body["expires_on"] = d.expires_on.isoformat()
        if d.max_credit_period_days is not None:
            body["max_credit_period_days"] = d.max_credit_period_days
        ok(api.post(f"/v1/policies/{d.policy_ref}/limits", json=body), 201)
    for i in s.invoices:
        body = {"buyer_ref": "B", "currency": i.currency, "amount": str(i.amount),
                "issue_date": i.issue_date.isoformat(), "due_date": i.original_due_date.isoformat()}
        ok(api.put(f"/v1/invoices/{i.ref}", json=body))
        if i.due_date != i.original_due_date:  # postponed: the claim deadline still runs from the original
            ok(api.put(f"/v1/invoices/{i.ref}", json=body | {"due_date": i.due_date.isoformat()}))
        if i.claim_filed_on is not None:
            ok(api.post("/v1/claims", json={"buyer_ref": "B", "invoice_refs": [i.ref],
                                            "filed_on": i.claim_filed_on.isoformat()}))
        for n, (day, amount) in enumerate(i.settlements):
            ok(api.put(f"/v1/payments/{i.ref}-{n}", json={
                "buyer_ref": "B", "amount": str(amount), "currency": i.currency, "received_on": day.isoformat(),
                "allocations": [{"invoice_ref": i.ref, "amount": str(amount)}]}))


def assert_api_agrees(row: dict[str, Any], s: oracle.Scenario) -> None:
    expected = oracle.evaluate(s)
    assert row["currency"] == expected.currency
    for f in TOTALS:
        assert Decimal(row[f]) == getattr(expected, f), f
    assert row["status"] == expected.status
    assert bool(row["errors"]) == expected.has_errors
    assert row["missing_rates"] == sorted(f"{a}/{b}" for a, b in expected.missing_pairs)
    got = {i["invoice_ref"]: i for i in row["invoices"]}
    for inv in expected.invoices:
        if inv.open is not None and inv.ref not in got:
            assert inv.open == 0 and inv.covered_primary == inv.covered_top_up == 0, inv.ref  # settled
            continue
        mine = got.pop(inv.ref)
        assert mine["reason"] == inv.reason, inv.ref
        if inv.open is not None:
            assert (Decimal(mine["open_balance"]), Decimal(mine["covered_primary"]), Decimal(mine["covered_top_up"]),
                    Decimal(mine["uncovered"])) == (inv.open, inv.covered_primary, inv.covered_top_up,
                                                     inv.uncovered), inv.ref
    assert not got
    utilisation = Decimal(row["utilisation"]) if row["utilisation"] is not None else None
    assert utilisation == expected.utilisation
    stops = {}
    for p in row["stop_periods"]:
        stops.setdefault(p["policy_ref"], []).append((p["starts_on"], p["ends_on"], tuple(p["invoice_refs"])))
    assert stops == {ref: [(a.isoformat(), b.isoformat() if b else None, refs) for a, b, refs in periods]
                     for ref, periods in expected.stop_periods.items() if periods}


@settings(max_examples=EXAMPLES, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(s=scenarios(max_invoices=8))
def test_the_api_agrees_with_the_oracle(make_tenant, clock, s):
    api = make_tenant(currency=s.default_currency).client
    clock.set(s.valued_on)
    post_scenario(api, s)
    assert_api_agrees(ok(api.get("/v1/exposure/buyers/B")), s)
