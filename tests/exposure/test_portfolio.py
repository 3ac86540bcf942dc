"""A portfolio with two primary policies in two currencies, a country-scoped Top Up, a reduction and a
withdrawal: exact results per buyer, per country and in total."""

from tests.helpers import PRIMARY, TOP_UP, buyer, exposure, invoice, limit, ok, payment

EUROPE = PRIMARY | {"insurer": "Allianz Trade", "excluded_countries": ["US"]}
AMERICAS = PRIMARY | {"insurer": "Atradius", "currency": "USD", "covered_countries": ["US"],
                      "indemnity_rate": "0.80"}
TOP_UP_DE_IT = TOP_UP | {"primary_policy_ref": "EU", "countries": ["DE", "IT"], "indemnity_rate": "0.95"}


def test_multi_policy_portfolio(api):
    ok(api.put("/v1/fx-rates", json={"rates": [{"date": "2026-03-19", "base": "EUR", "quote": "USD",
                                                "rate": "1.25"}]}))
    ok(api.put("/v1/policies/EU", json=EUROPE))
    ok(api.put("/v1/policies/AM", json=AMERICAS))
    ok(api.put("/v1/policies/TU", json=TOP_UP_DE_IT))
    for ref, country in (("DE1", "DE"), ("FR1", "FR"), ("US1", "US"), ("IT1", "IT")):
        buyer(api, ref, country)
    # DE1: 50k EUR, reduced to 20k on 1 March; the Top Up follows.
    limit(api, "50000.00", "2026-01-01", buyer_ref="DE1", policy="EU")
    limit(api, "20000.00", "2026-03-01", buyer_ref="DE1", policy="EU", status="reduced")
    invoice(api, "DE-1", "30000.00", "2026-02-01", "2026-04-02", buyer_ref="DE1")
    invoice(api, "DE-2", "25000.00", "2026-03-05", "2026-05-04", buyer_ref="DE1")
    # FR1: 40k EUR, no Top Up in France.
    limit(api, "40000.00", "2026-01-01", buyer_ref="FR1", policy="EU")
    invoice(api, "FR-1", "45000.00", "2026-02-15", "2026-04-16", buyer_ref="FR1")
    # US1: USD policy, 100k USD, invoices in USD and one in EUR.
    limit(api, "100000.00", "2026-01-01", buyer_ref="US1", policy="AM")
    invoice(api, "US-1", "75000.00", "2026-02-01", "2026-04-02", buyer_ref="US1", currency="USD")
    invoice(api, "US-2", "40000.00", "2026-02-20", "2026-04-21", buyer_ref="US1")  # EUR 40k = USD 50k
    # IT1: granted then withdrawn; a later delivery is not covered by either layer.
    limit(api, "10000.00", "2026-01-01", buyer_ref="IT1", policy="EU")
    limit(api, None, "2026-03-01", buyer_ref="IT1", policy="EU", status="withdrawn")
    invoice(api, "IT-1", "8000.00", "2026-02-10", "2026-04-11", buyer_ref="IT1")
    invoice(api, "IT-2", "6000.00", "2026-03-10", "2026-05-09", buyer_ref="IT1")
    payment(api, "IT-PAY", "3000.00", buyer_ref="IT1")  # oldest due first: IT-1 down to 5,000

    de = exposure(api, "DE1")
    # DE-1 (Feb, L=50k): primary 30k. DE-2 (Mar, L=20k): primary max(0, 20k-30k)=0; Top Up T=20k covers 20k.
    assert [(i["invoice_ref"], i["covered_primary"], i["covered_top_up"], i["uncovered"]) for i in de["invoices"]] == [
        ("DE-1", "30000.00", "0.00", "0.00"), ("DE-2", "0.00", "20000.00", "5000.00")]
    assert (de["status"], de["primary_limit"], de["top_up_limit"], de["indemnifiable"]) == (
        "above_cover", "20000.00", "20000.00", "46000.00")  # 30k x 0.90 + 20k x 0.95

    fr = exposure(api, "FR1")
    assert (fr["covered_primary"], fr["covered_top_up"], fr["uncovered"], fr["top_up_limit"]) == (
        "40000.00", "0.00", "5000.00", "0.00")

    us = exposure(api, "US1")
    assert us["currency"] == "USD"
    assert [(i["invoice_ref"], i["open_balance"], i["covered_primary"], i["uncovered"]) for i in us["invoices"]] == [
        ("US-1", "75000.00", "75000.00", "0.00"), ("US-2", "50000.00", "25000.00", "25000.00")]
    assert (us["outstanding"], us["indemnifiable"], us["utilisation"]) == ("125000.00", "80000.00", "1.25")

    it = exposure(api, "IT1")
    assert [(i["invoice_ref"], i["open_balance"], i["covered_primary"], i["covered_top_up"], i["reason"])
            for i in it["invoices"]] == [("IT-1", "5000.00", "5000.00", "0.00", None),
                                         ("IT-2", "6000.00", "0.00", "0.00", "no_limit")]

    total = ok(api.get("/v1/exposure"))
    # In EUR: DE 55k, FR 45k, US 125k USD = 100k EUR, IT 11k.
    assert total["outstanding"] == "211000.00"
    assert total["covered_primary"] == "155000.00"  # 30k + 40k + 80k (100k USD) + 5k
    assert total["covered_top_up"] == "20000.00"
    assert total["uncovered"] == "36000.00"  # 5k + 5k + 20k (25k USD) + 6k
    countries = {c["country"]: c for c in ok(api.get("/v1/exposure/countries"))}
    assert countries["US"]["outstanding"] == "100000.00" and countries["US"]["currency"] == "EUR"
