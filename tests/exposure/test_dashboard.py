"""Dashboard reads: portfolio, buyers, countries; ETags; isolation; the read scope."""

from tests.helpers import PRIMARY, buyer, domain_policies, exposure, invoice, limit, ok


def _portfolio(api):
    domain_policies(api)
    for ref, country, amount in (("FR1", "FR", "150000.00"), ("FR2", "FR", "30000.00"), ("DE1", "DE", "50000.00"),
                                 ("ES1", "ES", "10000.00")):
        buyer(api, ref, country)
        if ref != "ES1":
            limit(api, "100000.00", "2026-01-01", buyer_ref=ref)
        invoice(api, f"{ref}-I", amount, "2026-02-01", "2026-03-31", buyer_ref=ref)
    invoice(api, "DE1-J", "300000.00", "2026-03-01", "2026-04-30", buyer_ref="DE1")
    ok(api.put("/v1/country-limits/FR", json={"amount": "150000.00", "currency": "EUR"}))
    ok(api.put("/v1/country-limits/IT", json={"amount": "10.00", "currency": "EUR"}))


def test_portfolio_totals_and_status_counts(api):
    _portfolio(api)
    p = ok(api.get("/v1/exposure"))
    assert p["currency"] == "EUR" and p["valued_on"] == "2026-03-20"
    assert p["outstanding"] == "540000.00"
    # FR1 150k: 100k + 50k; FR2 30k primary; DE1 350k: 100k + 100k, 150k uncovered; ES1 no limit: 10k uncovered.
    assert (p["covered_primary"], p["covered_top_up"], p["uncovered"]) == ("230000.00", "150000.00", "160000.00")
    assert p["buyers_by_status"] == {"ok": 1, "above_primary": 1, "above_cover": 1, "no_cover": 1, "incomplete": 0}
    assert p["indemnifiable"] == "342000.00"


def test_buyers_filters_sorting_and_pagination(api):
    _portfolio(api)

    def refs(**params):
        return [r["buyer_ref"] for r in ok(api.get("/v1/exposure/buyers", params=params))["items"]]

    assert refs() == ["DE1", "ES1", "FR1", "FR2"]
    assert refs(country="FR") == ["FR1", "FR2"]
    assert refs(status="no_cover") == ["ES1"]
    assert refs(min_uncovered="10000") == ["DE1", "ES1"]
    # More decimals than amounts are stored with (a 500 on SQLite, found by the fuzzer): the same filter.
    assert refs(min_uncovered="9999.99999") == ["DE1", "ES1"]
    assert refs(min_uncovered="10000.00001") == ["DE1"]
    assert refs(sort="-outstanding") == ["DE1", "FR1", "FR2", "ES1"]
    assert refs(sort="utilisation") == ["ES1", "FR2", "FR1", "DE1"]
    pages, cursor = [], None
    while True:
        params = {"sort": "-uncovered", "limit": 1} | ({"cursor": cursor} if cursor else {})
        page = ok(api.get("/v1/exposure/buyers", params=params))
        pages += [r["buyer_ref"] for r in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert pages == ["DE1", "ES1", "FR2", "FR1"]
    assert api.get("/v1/exposure/buyers", params={"sort": "colour"}).json()["errors"][0]["pointer"] == "/sort"
    row = ok(api.get("/v1/exposure/buyers", params={"country": "DE"}))["items"][0]
    assert (row["status"], row["utilisation"], row["uncovered"]) == ("above_cover", "1.75", "150000.00")


def test_countries_against_their_limits(api):
    _portfolio(api)
    countries = {c["country"]: c for c in ok(api.get("/v1/exposure/countries"))}
    assert set(countries) == {"DE", "ES", "FR", "IT"}
    fr = countries["FR"]
    assert (fr["buyers"], fr["outstanding"], fr["country_limit"], fr["headroom"], fr["above_limit"]) == (
        2, "180000.00", "150000.00", "-30000.00", True)
    assert countries["DE"]["country_limit"] is None and countries["DE"]["above_limit"] is False
    assert (countries["IT"]["buyers"], countries["IT"]["outstanding"], countries["IT"]["above_limit"]) == (
        0, "0.00", False)


def test_unchanged_poll_is_a_304_and_a_change_moves_the_tag(api):
    _portfolio(api)
    for path in ("/v1/exposure", "/v1/exposure/buyers", "/v1/exposure/buyers/FR1", "/v1/exposure/countries"):
        first = api.get(path)
        tag = first.headers["etag"]
        again = api.get(path, headers={"If-None-Match": tag})
        assert again.status_code == 304 and again.content == b""
        assert again.headers["etag"] == tag
    tag = api.get("/v1/exposure").headers["etag"]
    invoice(api, "FR1-K", "1.00", "2026-03-02", "2026-04-01", buyer_ref="FR1")
    changed = api.get("/v1/exposure", headers={"If-None-Match": tag})
    assert changed.status_code == 200 and changed.headers["etag"] != tag
    # Other GETs carry an ETag too.
    listed = api.get("/v1/invoices")
    assert api.get("/v1/invoices", headers={"If-None-Match": listed.headers["etag"]}).status_code == 304


def test_exposure_is_isolated_and_readable_with_a_read_key(make_tenant, anon):
    a, b = make_tenant("A"), make_tenant("B")
    _portfolio(a.client)
    assert b.client.get("/v1/exposure/buyers/FR1").status_code == 404
    assert ok(b.client.get("/v1/exposure/buyers"))["items"] == []
    assert ok(b.client.get("/v1/exposure"))["outstanding"] == "0.00"
    assert ok(b.client.get("/v1/exposure/countries")) == []
    read = ok(a.client.post("/v1/api-keys", json={"name": "wallboard", "scope": "read"}), 201)["key"]
    r = anon.get("/v1/exposure", headers={"Authorization": f"Bearer {read}"})
    assert r.status_code == 200 and r.json()["outstanding"] == "540000.00"
    assert anon.post("/v1/credit-checks", json={"buyer_ref": "FR1", "currency": "EUR", "amount": "1.00"},
                     headers={"Authorization": f"Bearer {read}"}).status_code == 403


def test_policy_change_revalues_every_buyer(api):
    _portfolio(api)
    # An endorsement from today leaves earlier deliveries as they were (rule 8)...
    ok(api.put("/v1/policies/P", json=PRIMARY | {"excluded_countries": ["DE"]}))
    assert exposure(api, "DE1")["covered_primary"] == "100000.00"
    # ...a correction of the original terms (effective from the policy's start) revalues every buyer.
    ok(api.put("/v1/policies/P", json=PRIMARY | {"excluded_countries": ["DE"], "effective_from": "2026-01-01"}))
    de = exposure(api, "DE1")
    assert (de["covered_primary"], de["uncovered"]) == ("0.00", "350000.00")
    assert {i["reason"] for i in de["invoices"]} == {"outside_territory"}


def test_a_buyers_invoices_come_a_page_at_a_time_in_walk_order(api):
    domain_policies(api)
    buyer(api, "B1")
    limit(api, "50000.00", "2026-01-01")
    refs = [f"FA 2026/{n:03d}" for n in range(7)]
    ok(api.post("/v1/invoices/batch", json={"items": [
        {"invoice_ref": ref, "buyer_ref": "B1", "currency": "EUR", "amount": "10000.00",
         "issue_date": f"2026-02-{10 - n:02d}", "due_date": "2026-04-30"} for n, ref in enumerate(refs)]}))
    walk = list(reversed(refs))  # delivered from the last to the first
    detail = ok(api.get("/v1/exposure/buyers/B1", params={"invoices_limit": 3}))
    assert detail["invoice_count"] == 7 and [i["invoice_ref"] for i in detail["invoices"]] == walk[:3]
    seen, cursor = [i["invoice_ref"] for i in detail["invoices"]], detail["invoices_next_cursor"]
    while cursor:
        page = ok(api.get("/v1/exposure/buyers/B1/invoices", params={"limit": 3, "cursor": cursor}))
        seen += [i["invoice_ref"] for i in page["items"]]
        cursor = page["next_cursor"]
    assert seen == walk
    # Cover is consumed in that order: the first five deliveries use the 50,000 primary limit, then the Top Up.
    first = ok(api.get("/v1/exposure/buyers/B1/invoices", params={"cursor": ""}))["items"]
    assert [i["covered_primary"] for i in first] == ["10000.00"] * 5 + ["0.00"] * 2
    assert api.get("/v1/exposure/buyers/B1/invoices", params={"cursor": "bm9wZQ"}).status_code == 422
    assert api.get("/v1/exposure/buyers/NOPE/invoices").status_code == 404
