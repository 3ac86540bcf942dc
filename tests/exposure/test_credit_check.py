from tests.helpers import buyer, domain_policies, exposure, invoice, limit, ok


def _check(api, amount, **kw):
    return ok(api.post("/v1/credit-checks", json={"buyer_ref": "B1", "currency": "EUR", "amount": amount} | kw))


def test_credit_check_answers_without_writing(api):
    domain_policies(api)
    buyer(api, "B1")
    limit(api, "100000.00", "2026-01-01")
    invoice(api, "I1", "80000.00", "2026-02-10", "2026-04-11")
    before = exposure(api)
    c = _check(api, "10000.00", payment_terms_days=60)
    assert (c["decision"], c["covered_primary"], c["covered_top_up"], c["uncovered"]) == (
        "covered", "10000.00", "0.00", "0.00")
    assert (c["headroom_primary"], c["headroom_top_up"], c["exposure_after"]) == ("10000.00", "100000.00",
                                                                                  "90000.00")
    c = _check(api, "150000.00", payment_terms_days=60)
    assert (c["decision"], c["covered_primary"], c["covered_top_up"], c["uncovered"]) == (
        "partially_covered", "20000.00", "100000.00", "30000.00")
    assert c["reasons"] == ["above_limit"] and c["headroom_top_up"] == "0.00"
    c = _check(api, "1000.00", payment_terms_days=150)
    assert (c["decision"], c["reasons"]) == ("not_covered", ["terms_exceed_max_credit_period"])
    c = _check(api, "1000.00", delivery_date="2027-01-05")
    assert (c["decision"], c["reasons"]) == ("not_covered", ["outside_policy_period"])
    assert exposure(api) == before
    assert len(ok(api.get("/v1/invoices"))["items"]) == 1


def test_credit_check_problems(api):
    buyer(api, "B1")
    r = api.post("/v1/credit-checks", json={"buyer_ref": "NOPE", "currency": "EUR", "amount": "1.00"})
    assert r.status_code == 422 and r.json()["errors"][0]["pointer"] == "/buyer_ref"
    r = api.post("/v1/credit-checks", json={"buyer_ref": "B1", "currency": "EUR", "amount": "-1"})
    assert r.status_code == 422 and r.json()["errors"][0]["pointer"] == "/amount"
    c = _check(api, "500.00")
    assert (c["decision"], c["reasons"]) == ("not_covered", ["no_limit"])


def test_headroom_is_per_top_up_layer(api):
    from tests.helpers import TOP_UP

    domain_policies(api)
    ok(api.put("/v1/policies/T2", json=TOP_UP | {"insurer": "Atradius", "ratio": "0.5"}))
    buyer(api, "B1")
    limit(api, "100000.00", "2026-01-01")
    invoice(api, "I1", "150000.00", "2026-02-10", "2026-04-11")  # primary 100k, T 50k, T2 nothing yet
    c = _check(api, "10000.00", payment_terms_days=60)
    assert (c["decision"], c["covered_primary"], c["covered_top_up"]) == ("covered", "0.00", "10000.00")
    # T: 100k - 60k used = 40k left; T2: 50k - 0 used = 50k left.
    assert (c["headroom_primary"], c["headroom_top_up"]) == ("0.00", "90000.00")
