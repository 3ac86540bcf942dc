"""DOMAIN.md rules 7 to 11 and examples H to K through the API, on SQLite and PostgreSQL; and one test per bug
the cover-rules issue found on main (each failed there)."""

from datetime import date

from tests.helpers import PRIMARY, TOP_UP, buyer, domain_policies, exposure, invoice, limit, ok, payment


def _reasons(row: dict) -> dict[str, tuple[str, str, str | None]]:
    return {i["invoice_ref"]: (i["covered_primary"], i["uncovered"], i["reason"]) for i in row["invoices"]}


def test_h_stop_of_cover_is_history(api, clock):
    domain_policies(api, top_up=False, primary=PRIMARY | {"max_extension_days": 30})
    buyer(api)
    limit(api, "100000.00", "2026-01-01")
    clock.set(date(2026, 3, 20))
    invoice(api, "X", "20000.00", "2026-01-10", "2026-02-09")
    invoice(api, "Y", "30000.00", "2026-03-20", "2026-05-19")
    row = exposure(api)
    assert row["stop_of_cover_from"] == "2026-03-11"
    assert row["stop_periods"] == [{"policy_ref": "P", "starts_on": "2026-03-11", "ends_on": None,
                                    "invoice_refs": ["X"]}]
    clock.set(date(2026, 4, 1))
    payment(api, "PAY-X", "20000.00", received_on="2026-04-01")
    clock.set(date(2026, 4, 5))
    invoice(api, "Z", "25000.00", "2026-04-05", "2026-06-04")
    clock.set(date(2026, 4, 20))
    row = exposure(api)
    assert _reasons(row) == {"Y": ("0.00", "30000.00", "delivered_during_stop_of_cover"),
                             "Z": ("25000.00", "0.00", None)}
    assert (row["covered_primary"], row["uncovered"]) == ("25000.00", "30000.00")
    assert row["stop_of_cover_from"] is None
    assert row["stop_periods"] == [{"policy_ref": "P", "starts_on": "2026-03-11", "ends_on": "2026-04-01",
                                    "invoice_refs": ["X"]}]
    # A bounced payment reopens the stop: Z, delivered after it started, loses its cover too.
    assert api.delete("/v1/payments/PAY-X").status_code == 200
    row = exposure(api)
    assert row["stop_periods"][0]["ends_on"] is None
    assert _reasons(row)["Z"][2] == "delivered_during_stop_of_cover"


def test_i_endorsements_apply_from_their_date(api, clock):
    domain_policies(api, top_up=False)
    buyer(api)
    buyer(api, "IT1", country="IT")
    limit(api, "100000.00", "2026-01-01")
    limit(api, "100000.00", "2026-01-01", buyer_ref="IT1")
    invoice(api, "FEB", "10000.00", "2026-02-15", "2026-05-26")  # 100-day terms
    invoice(api, "MAR", "10000.00", "2026-03-05", "2026-06-13")
    invoice(api, "IT-MAR", "10000.00", "2026-03-10", "2026-05-09", buyer_ref="IT1")
    ok(api.put("/v1/policies/P", json=PRIMARY | {"max_credit_period_days": 90, "effective_from": "2026-03-01"}))
    assert _reasons(exposure(api)) == {"FEB": ("10000.00", "0.00", None),
                                       "MAR": ("0.00", "10000.00", "terms_exceed_max_credit_period")}
    ok(api.put("/v1/policies/P", json=PRIMARY | {"max_credit_period_days": 90, "excluded_countries": ["IT"],
                                                 "effective_from": "2026-04-01"}))
    clock.set(date(2026, 4, 10))
    invoice(api, "IT-APR", "10000.00", "2026-04-02", "2026-06-01", buyer_ref="IT1")
    assert _reasons(exposure(api, "IT1")) == {"IT-MAR": ("10000.00", "0.00", None),
                                              "IT-APR": ("0.00", "10000.00", "outside_territory")}
    policy = ok(api.get("/v1/policies/P"))
    versions = [(v["effective_from"], v["max_credit_period_days"], v["excluded_countries"]) for v in policy["versions"]]
    assert versions == [("2026-01-01", 120, []), ("2026-03-01", 90, []), ("2026-04-01", 90, ["IT"])]
    assert policy["as_of"] == "2026-04-10" and policy["excluded_countries"] == ["IT"]
    # The same body again changes nothing.
    again = ok(api.put("/v1/policies/P", json=PRIMARY | {"max_credit_period_days": 90, "excluded_countries": ["IT"],
                                                         "effective_from": "2026-04-01"}))
    assert len(again["versions"]) == 3


def test_bug_policy_currency_cannot_change_under_its_decisions(api):
    domain_policies(api, top_up=False)
    buyer(api)
    limit(api, "100000.00", "2026-01-01")
    r = api.put("/v1/policies/P", json=PRIMARY | {"currency": "USD"})
    assert r.status_code == 422 and r.json()["errors"][0]["pointer"] == "/currency"
    assert exposure(api)["primary_limit"] == "100000.00"


def test_bug_top_up_terms_are_refused_not_ignored(api):
    domain_policies(api, top_up=False)
    r = api.put("/v1/policies/T", json=TOP_UP | {"max_credit_period_days": 60})
    assert r.status_code == 422 and r.json()["errors"][0]["pointer"] == "/max_credit_period_days"


def test_j_missing_rate_is_unknown_never_zero(api):
    domain_policies(api, top_up=TOP_UP | {"currency": "USD", "per_buyer_cap": "60000.00"})
    buyer(api)
    limit(api, "100000.00", "2026-01-01")
    invoice(api, "I1", "80000.00", "2026-02-10", "2026-04-11")
    invoice(api, "I2", "90000.00", "2026-03-01", "2026-04-30")
    row = exposure(api)
    assert row["covered_top_up"] == "0.00" and row["covered_primary"] == "100000.00"
    assert row["status"] == "above_cover" and row["errors"] == ["missing FX rate USD/EUR on or before 2026-03-20"]
    assert row["missing_rates"] == ["USD/EUR"]
    fr = next(c for c in ok(api.get("/v1/exposure/countries")) if c["country"] == "FR")
    assert fr["errors"] == row["errors"]
    assert ok(api.get("/v1/exposure"))["errors"] == row["errors"]
    check = api.post("/v1/credit-checks", json={"buyer_ref": "B1", "currency": "EUR", "amount": "1000.00"})
    assert check.status_code == 422 and check.json()["missing_rates"] == ["USD/EUR"]
    alerts = ok(api.get("/v1/alerts", params={"type": "fx_rate_missing"}))
    [alert] = alerts["items"] if isinstance(alerts, dict) else alerts
    assert alert["subject"] == "USD/EUR" and alert["state"] == "open"
    # The rate arrives: the cap of 60,000 USD is 50,000 EUR, and everything is known again.
    ok(api.put("/v1/fx-rates", json={"rates": [{"date": "2026-03-19", "base": "EUR", "quote": "USD", "rate": "1.2"}]}))
    row = exposure(api)
    assert (row["covered_top_up"], row["uncovered"], row["errors"], row["status"]) == (
        "50000.00", "20000.00", [], "above_cover")
    assert ok(api.get(f"/v1/alerts/{alert['id']}"))["state"] == "resolved"


def test_bug_substitute_never_starts_for_a_granted_buyer_when_a_rate_is_missing(api):
    domain_policies(api, top_up=TOP_UP | {"mode": "substitute", "currency": "USD"})
    buyer(api)
    limit(api, "10000.00", "2026-01-01")
    limit(api, "50000.00", "2026-01-01", policy="T")
    invoice(api, "I1", "30000.00", "2026-02-10", "2026-04-11")
    row = exposure(api)
    assert (row["covered_primary"], row["covered_top_up"], row["uncovered"]) == ("10000.00", "0.00", "20000.00")


def test_k_discretionary_limits(api, clock):
    domain_policies(api, primary=PRIMARY | {"discretionary_limit_max": "20000.00"})
    buyer(api)
    assert limit(api, "15000.00", "2026-01-01", source="discretionary")["source"] == "discretionary"
    r = api.post("/v1/policies/P/limits", json={"buyer_ref": "B1", "status": "granted", "amount": "25000.00",
                                               "effective_from": "2026-01-01", "source": "discretionary"})
    assert r.status_code == 422 and r.json()["errors"][0]["pointer"] == "/amount"
    limit(api, "50000.00", "2026-05-01", decision_ref="AT-778")
    r = api.post("/v1/policies/P/limits", json={"buyer_ref": "B1", "status": "granted", "amount": "10000.00",
                                               "effective_from": "2026-06-01", "source": "discretionary"})
    assert r.status_code == 422 and "AT-778" in r.json()["detail"]
    clock.set(date(2026, 5, 20))
    invoice(api, "APR", "20000.00", "2026-04-10", "2026-06-09")
    invoice(api, "MAY", "60000.00", "2026-05-05", "2026-07-04")
    cover = {i["invoice_ref"]: (i["covered_primary"], i["covered_top_up"], i["uncovered"])
             for i in exposure(api)["invoices"]}
    # The complement Top Up follows the insurer's limits only: nothing above the discretionary 15,000 in April.
    assert cover == {"APR": ("15000.00", "0.00", "5000.00"), "MAY": ("35000.00", "25000.00", "0.00")}


def test_bug_discretionary_limits_need_a_ceiling(api):
    domain_policies(api, top_up=False)
    buyer(api)
    r = api.post("/v1/policies/P/limits", json={"buyer_ref": "B1", "status": "granted", "amount": "1000000000.00",
                                               "effective_from": "2026-01-01", "source": "discretionary"})
    assert r.status_code == 422 and r.json()["errors"][0]["pointer"] == "/source"


def test_bug_substitute_needs_a_refusal(api):
    domain_policies(api, top_up=TOP_UP | {"mode": "substitute"})
    buyer(api)
    limit(api, "50000.00", "2026-01-01", policy="T")
    invoice(api, "I1", "30000.00", "2026-02-10", "2026-04-11")
    assert exposure(api)["covered_top_up"] == "0.00"
    limit(api, None, "2026-01-01", status="refused")
    assert exposure(api)["covered_top_up"] == "30000.00"


def test_bug_amounts_are_checked_against_their_currency_wherever_it_stands(api):
    buyer(api)
    r = api.put("/v1/payments/P1", json={"buyer_ref": "B1", "amount": "10.5", "currency": "JPY",
                                         "received_on": "2026-03-01"})
    assert r.status_code == 422 and r.json()["errors"][0]["pointer"] == "/amount"
    r = api.put("/v1/payments/P1", json={"buyer_ref": "B1", "amount": "10", "currency": "JPY",
                                         "received_on": "2026-03-01", "allocations": [
                                             {"invoice_ref": "X", "amount": "1.5"}]})
    assert r.status_code == 422 and r.json()["errors"][0]["pointer"] == "/allocations/0/amount"
    r = api.put("/v1/country-limits/JP", json={"amount": "10.5", "currency": "JPY"})
    assert r.status_code == 422 and r.json()["errors"][0]["pointer"] == "/amount"
    assert api.get("/v1/payments/P1").status_code == 404


def test_bug_amounts_and_rates_beyond_storage_are_refused(api):
    buyer(api)
    for amount in ("920000000000000.00", "999999999999999.99", "1000000000000.00"):
        r = api.put("/v1/invoices/BIG", json={"buyer_ref": "B1", "currency": "EUR", "amount": amount,
                                              "issue_date": "2026-03-01", "due_date": "2026-04-01"})
        assert r.status_code == 422, amount
    ok(api.put("/v1/invoices/BIG", json={"buyer_ref": "B1", "currency": "EUR", "amount": "999999999999.99",
                                         "issue_date": "2026-03-01", "due_date": "2026-04-01"}))
    for rate in ("1000000000", "922337204", "1.12345678901"):
        r = api.put("/v1/fx-rates", json={"rates": [{"date": "2026-03-01", "base": "EUR", "quote": "IDR",
                                                     "rate": rate}]})
        assert r.status_code == 422 and r.json()["errors"][0]["pointer"] == "/rates/0/rate", rate
    for cell in ("NaN", "Infinity", "-1", "1e400", "0.12345678901"):
        r = api.post("/v1/fx-rates/ecb", content=f"Date,USD,JPY\n2026-03-19,1.08,{cell}\n",
                     headers={"Content-Type": "text/csv"})
        assert r.status_code == 422, cell
        assert r.json()["errors"][0]["pointer"] == "/csv/2/2" and "column 3" in r.json()["detail"]
    assert ok(api.get("/v1/fx-rates"))["items"] == []


def test_bug_a_huge_utilisation_is_stored(api):
    domain_policies(api, top_up=False)
    buyer(api)
    limit(api, "0.01", "2026-01-01")
    invoice(api, "I1", "50000.00", "2026-03-01", "2026-04-01")
    row = exposure(api)
    assert row["utilisation"] == "999999.9999" and row["status"] == "above_cover"
    invoice(api, "I2", "10.00", "2026-03-02", "2026-04-01")
    assert exposure(api)["outstanding"] == "50010.00"


def _two_buyers_on_20_may(api, clock) -> None:
    """B1 then B2 (ids in that order), each with a limit of 100,000; today 20 May 2026."""
    domain_policies(api, top_up=False)
    buyer(api)
    buyer(api, "B2")
    limit(api, "100000.00", "2026-01-01")
    limit(api, "100000.00", "2026-01-01", buyer_ref="B2")
    clock.set(date(2026, 5, 20))


def test_bug_moving_an_invoice_moves_its_claim_deadline_alert(api, clock):
    _two_buyers_on_20_may(api, clock)
    invoice(api, "I1", "1000.00", "2026-02-01", "2026-03-31")  # claim deadline 30 May: 10 days left
    alerts = ok(api.get("/v1/alerts", params={"type": "claim_deadline_near"}))
    items = alerts["items"] if isinstance(alerts, dict) else alerts
    assert [(a["buyer_ref"], a["invoice_ref"]) for a in items] == [("B1", "I1")]
    for _ in range(2):
        invoice(api, "I1", "1000.00", "2026-02-01", "2026-03-31", buyer_ref="B2")
    alerts = ok(api.get("/v1/alerts", params={"type": "claim_deadline_near", "state": "open"}))
    items = alerts["items"] if isinstance(alerts, dict) else alerts
    assert [(a["buyer_ref"], a["invoice_ref"]) for a in items] == [("B2", "I1")]


def test_an_alert_moved_in_one_chunk_of_a_refresh_is_not_cleared_by_the_next(api, clock, monkeypatch):
    """The buyers of a refresh are walked in chunks; an invoice alert moved to a buyer of the first chunk is
    written at once, so the chunk of the buyer it left reads it moved, not still open there to be cleared."""
    import app.exposure.service as exposure_service

    _two_buyers_on_20_may(api, clock)
    invoice(api, "I1", "1000.00", "2026-02-01", "2026-03-31", buyer_ref="B2")  # claim deadline near
    [before] = ok(api.get("/v1/alerts", params={"type": "claim_deadline_near"}))["items"]
    monkeypatch.setattr(exposure_service, "CHUNK", 1)  # B1 (the first buyer by id), then B2, each a chunk
    invoice(api, "I1", "1000.00", "2026-02-01", "2026-03-31")  # moved to B1
    items = ok(api.get("/v1/alerts", params={"type": "claim_deadline_near"}))["items"]
    assert [(a["id"], a["buyer_ref"], a["state"]) for a in items] == [(before["id"], "B1", "open")]
