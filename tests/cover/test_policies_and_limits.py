from tests.helpers import PRIMARY, TOP_UP, buyer, domain_policies, exposure, invoice, limit, ok

EXCESS = PRIMARY | {"kind": "excess_of_loss", "aggregate_first_loss": "50000.00",
                    "discretionary_limit_max": "30000.00"}


def test_policy_crud_and_validation(api):
    r = api.put("/v1/policies/T", json=TOP_UP)
    assert r.status_code == 422 and r.json()["errors"][0]["pointer"] == "/primary_policy_ref"
    assert api.put("/v1/policies/P", json=PRIMARY).status_code == 201
    assert api.put("/v1/policies/P", json=PRIMARY | {"indemnity_rate": "0.85"}).status_code == 200
    assert api.put("/v1/policies/T", json=TOP_UP).status_code == 201
    got = ok(api.get("/v1/policies/T"))
    assert (got["primary_policy_ref"], got["mode"], got["ratio"]) == ("P", "complement", "1")
    assert [p["policy_ref"] for p in ok(api.get("/v1/policies"))["items"]] == ["P", "T"]
    assert api.get("/v1/policies/NOPE").status_code == 404

    cases = [
        (PRIMARY | {"indemnity_rate": "1.5"}, "/indemnity_rate"),
        (PRIMARY | {"indemnity_rate": "0"}, "/indemnity_rate"),
        (PRIMARY | {"ends_on": "2025-12-31"}, "/ends_on"),
        (PRIMARY | {"covered_countries": ["FR", "ZZ"]}, "/covered_countries/1"),
        (PRIMARY | {"mode": "complement"}, "/mode"),
        (PRIMARY | {"kind": "excess_of_loss"}, "/aggregate_first_loss"),
        (PRIMARY | {"country_overrides": {"XX": {"claim_deadline_days": 30}}}, "/country_overrides"),
        (TOP_UP | {"primary_policy_ref": "T"}, "/primary_policy_ref"),
        (TOP_UP | {"mode": None}, "/mode"),
    ]
    for body, pointer in cases:
        r = api.put("/v1/policies/X", json=body)
        assert r.status_code == 422, (body, r.text)
        assert r.json()["errors"][0]["pointer"] == pointer, (body, r.json())
    assert api.get("/v1/policies/X").status_code == 404
    # A primary that a Top Up stands on cannot become a Top Up.
    r = api.put("/v1/policies/P", json=TOP_UP | {"primary_policy_ref": "T"})
    assert r.status_code == 422


def test_decisions_are_history_and_limits_in_force_by_date(api):
    domain_policies(api)
    buyer(api, "B1")
    first = limit(api, "100000.00", "2026-01-01", decision_ref="AT-1", requested_amount="150000.00")
    assert (first["amount"], first["currency"], first["status"]) == ("100000.00", "EUR", "granted")
    limit(api, "40000.00", "2026-03-01", status="reduced", decision_ref="AT-2")
    r = api.post("/v1/policies/P/limits", json={"buyer_ref": "B1", "status": "granted", "amount": "1.00",
                                               "effective_from": "2026-04-01", "decision_ref": "AT-2"})
    assert r.status_code == 409
    feb = ok(api.get("/v1/buyers/B1/limits", params={"at": "2026-02-15"}))
    assert [(x["policy_ref"], x["layer"], x["amount"], x["source"]) for x in feb["in_force"]] == [
        ("P", "primary", "100000.00", "insurer"), ("T", "top_up", "100000.00", "complement")]
    now = ok(api.get("/v1/buyers/B1/limits"))
    assert now["at"] == "2026-03-20"
    assert [x["amount"] for x in now["in_force"]] == ["40000.00", "40000.00"]
    assert [d["decision_ref"] for d in now["decisions"]] == ["AT-1", "AT-2"]
    assert now["decisions"][0]["requested_amount"] == "150000.00"


def test_decision_validation(api):
    domain_policies(api)
    ok(api.put("/v1/policies/XL", json=EXCESS))
    buyer(api, "B1")
    cases = [
        ("P", {"buyer_ref": "NOPE", "status": "granted", "amount": "1.00", "effective_from": "2026-01-01"},
         "/buyer_ref"),
        ("P", {"buyer_ref": "B1", "status": "granted", "effective_from": "2026-01-01"}, "/amount"),
        ("P", {"buyer_ref": "B1", "status": "refused", "amount": "10.00", "effective_from": "2026-01-01"}, "/amount"),
        ("P", {"buyer_ref": "B1", "status": "granted", "amount": "1.001", "effective_from": "2026-01-01"}, "/amount"),
        ("P", {"buyer_ref": "B1", "status": "granted", "amount": "1.00", "effective_from": "2026-01-01",
               "expires_on": "2025-01-01"}, "/expires_on"),
        ("P", {"buyer_ref": "B1", "status": "maybe", "amount": "1.00", "effective_from": "2026-01-01"}, "/status"),
        ("XL", {"buyer_ref": "B1", "status": "granted", "amount": "30000.01", "effective_from": "2026-01-01",
                "source": "discretionary"}, "/amount"),
        ("T", {"buyer_ref": "B1", "status": "granted", "amount": "10.00", "effective_from": "2026-01-01",
               "source": "discretionary"}, "/source"),
    ]
    for policy, body, pointer in cases:
        r = api.post(f"/v1/policies/{policy}/limits", json=body)
        assert r.status_code == 422, (body, r.text)
        assert r.json()["errors"][0]["pointer"] == pointer
    assert api.post("/v1/policies/NOPE/limits", json=cases[1][1]).status_code == 404
    assert ok(api.get("/v1/buyers/B1/limits"))["decisions"] == []


def test_an_insurer_decision_cancels_a_discretionary_limit(api):
    ok(api.put("/v1/policies/XL", json=EXCESS))
    buyer(api, "B1")
    limit(api, "25000.00", "2026-01-01", policy="XL", source="discretionary")
    invoice(api, "JAN", "20000.00", "2026-01-20", "2026-03-20")
    assert exposure(api)["covered_primary"] == "20000.00"
    limit(api, "0", "2026-02-01", policy="XL", status="refused")
    invoice(api, "FEB", "5000.00", "2026-02-20", "2026-04-20")
    e = exposure(api)
    assert [(i["invoice_ref"], i["uncovered"], i["reason"]) for i in e["invoices"]] == [
        ("JAN", "0.00", None), ("FEB", "5000.00", "no_limit")]
    assert e["primary_limit"] == "0.00"


def test_country_override_of_the_claim_deadline(api):
    domain_policies(api, top_up=False,
                    primary=PRIMARY | {"country_overrides": {"IT": {"claim_deadline_days": 30}}})
    buyer(api, "IT1", "IT")
    limit(api, "10000.00", "2026-01-01", buyer_ref="IT1")
    invoice(api, "I1", "100.00", "2026-01-10", "2026-02-10", buyer_ref="IT1")
    e = exposure(api, "IT1")
    assert e["invoices"][0]["claim_deadline"] == "2026-03-12"
    assert e["invoices"][0]["reason"] == "claim_deadline_passed"


def test_country_limits(api):
    domain_policies(api)
    r = api.put("/v1/country-limits/XX", json={"amount": "1.00", "currency": "EUR"})
    assert r.status_code == 422
    assert api.put("/v1/country-limits/FR", json={"amount": "500000.00", "currency": "EUR", "policy_ref": "P"}
                   ).status_code == 201
    r = api.put("/v1/country-limits/DE", json={"amount": "1.00", "currency": "EUR", "policy_ref": "NOPE"})
    assert r.status_code == 422 and r.json()["errors"][0]["pointer"] == "/policy_ref"
    assert ok(api.get("/v1/country-limits"))["items"] == [
        {"country": "FR", "amount": "500000.00", "currency": "EUR", "policy_ref": "P"}]
