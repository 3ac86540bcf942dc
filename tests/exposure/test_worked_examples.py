"""DOMAIN.md worked examples A to G through the API, on SQLite and PostgreSQL."""

from datetime import date

from app.exposure import jobs
from tests.helpers import TOP_UP, buyer, domain_policies, exposure, invoice, limit, ok, payment


def _covers(result):
    return [(i["invoice_ref"], i["covered_primary"], i["covered_top_up"], i["uncovered"], i.get("reason"))
            for i in result["invoices"]]


def test_a_doubling_and_b_over_cover(api):
    domain_policies(api)
    buyer(api, "B1", "FR")
    limit(api, "100000.00", "2026-01-01")
    invoice(api, "I1", "80000.00", "2026-02-10", "2026-04-11")
    invoice(api, "I2", "90000.00", "2026-03-01", "2026-04-30")
    a = exposure(api)
    assert (a["outstanding"], a["covered_primary"], a["covered_top_up"], a["uncovered"]) == (
        "170000.00", "100000.00", "70000.00", "0.00")
    assert a["indemnifiable"] == "153000.00"
    assert a["status"] == "above_primary"
    assert a["utilisation"] == "0.85"
    assert (a["primary_limit"], a["top_up_limit"]) == ("100000.00", "100000.00")
    assert _covers(a) == [("I1", "80000.00", "0.00", "0.00", None), ("I2", "20000.00", "70000.00", "0.00", None)]

    invoice(api, "I3", "50000.00", "2026-03-15", "2026-05-14")
    b = exposure(api)
    assert (b["covered_primary"], b["covered_top_up"], b["uncovered"], b["status"]) == (
        "100000.00", "100000.00", "20000.00", "above_cover")
    assert b["invoices"][-1]["reason"] == "above_limit"

    # A payment brings it back under cover (oldest due date first: I1).
    payment(api, "PAY1", "20000.00")
    assert exposure(api)["uncovered"] == "0.00"


def test_c_reduction(api):
    domain_policies(api)
    buyer(api, "B1")
    limit(api, "100000.00", "2026-01-01")
    limit(api, "40000.00", "2026-03-01", status="reduced")
    invoice(api, "FEB", "60000.00", "2026-02-15", "2026-04-16")
    invoice(api, "MAR", "30000.00", "2026-03-10", "2026-05-09")
    c = exposure(api)
    assert _covers(c) == [("FEB", "60000.00", "0.00", "0.00", None), ("MAR", "0.00", "30000.00", "0.00", None)]
    assert (c["uncovered"], c["status"], c["utilisation"]) == ("0.00", "above_primary", "1.125")


def test_d_withdrawal_and_a_substitute_top_up(api):
    domain_policies(api)
    buyer(api, "B1")
    limit(api, "100000.00", "2026-01-01")
    limit(api, None, "2026-03-01", status="withdrawn")
    invoice(api, "FEB", "60000.00", "2026-02-15", "2026-04-16")
    invoice(api, "MAR", "30000.00", "2026-03-10", "2026-05-09")
    d = exposure(api)
    assert _covers(d) == [("FEB", "60000.00", "0.00", "0.00", None), ("MAR", "0.00", "0.00", "30000.00", "no_limit")]
    substitute = TOP_UP | {"insurer": "CAP+", "mode": "substitute", "indemnity_rate": "0.80"}
    substitute.pop("ratio")
    ok(api.put("/v1/policies/CAP", json=substitute))
    limit(api, "50000.00", "2026-03-01", policy="CAP")
    d = exposure(api)
    assert _covers(d)[1] == ("MAR", "0.00", "30000.00", "0.00", None)
    assert d["indemnifiable"] == "78000.00"


def test_e_claim_deadline(api, clock, tenant, app, database):
    domain_policies(api)
    buyer(api, "B1")
    limit(api, "100000.00", "2026-01-01")
    invoice(api, "I1", "10000.00", "2026-02-01", "2026-03-31")
    assert exposure(api)["invoices"][0]["claim_deadline"] == "2026-05-30"
    # Date-driven changes are applied by a recomputation (`coverwatch recompute`, later the scheduler).
    clock.set(date(2026, 5, 30))
    jobs.recompute(database, app.state.settings, tenant_id=tenant.id)
    assert exposure(api)["uncovered"] == "0.00"
    clock.set(date(2026, 5, 31))
    assert jobs.recompute(database, app.state.settings, tenant_id=tenant.id, check_only=True) != []
    jobs.recompute(database, app.state.settings, tenant_id=tenant.id)
    e = exposure(api)
    assert _covers(e) == [("I1", "0.00", "0.00", "10000.00", "claim_deadline_passed")]
    assert e["overdue_61_90"] == "10000.00"


def test_f_territory_and_g_terms(api):
    domain_policies(api, top_up=TOP_UP | {"countries": ["DE", "IT"]})
    buyer(api, "ES1", "ES")
    buyer(api, "DE1", "DE")
    for b in ("ES1", "DE1"):
        limit(api, "100000.00", "2026-01-01", buyer_ref=b)
        invoice(api, f"{b}-1", "80000.00", "2026-02-10", "2026-04-11", buyer_ref=b)
        invoice(api, f"{b}-2", "90000.00", "2026-03-01", "2026-04-30", buyer_ref=b)
    es, de = exposure(api, "ES1"), exposure(api, "DE1")
    assert (es["covered_top_up"], es["uncovered"], es["top_up_limit"]) == ("0.00", "70000.00", "0.00")
    assert (de["covered_top_up"], de["uncovered"]) == ("70000.00", "0.00")

    invoice(api, "LONG", "5000.00", "2026-01-15", "2026-06-14", buyer_ref="DE1")  # 150-day terms
    de = exposure(api, "DE1")
    long = next(i for i in de["invoices"] if i["invoice_ref"] == "LONG")
    assert (long["uncovered"], long["reason"]) == ("5000.00", "terms_exceed_max_credit_period")
