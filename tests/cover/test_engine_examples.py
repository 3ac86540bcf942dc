"""DOMAIN.md worked examples A to G, on the pure engine."""

from datetime import date, timedelta
from decimal import Decimal as D

from app.cover.engine import Decision, HistoryItem, OpenItem, Policy, Rates, StopPeriod, evaluate, stop_periods

VALUED = date(2026, 3, 20)
PRIMARY = Policy(ref="P", kind="whole_turnover", currency="EUR", starts_on=date(2026, 1, 1),
                 ends_on=date(2026, 12, 31), indemnity_rate=D("0.90"), max_credit_period_days=120,
                 claim_deadline_days=60)
TOP_UP = Policy(ref="T", kind="top_up", currency="EUR", starts_on=date(2026, 1, 1), ends_on=date(2026, 12, 31),
                indemnity_rate=D("0.90"), primary_ref="P", mode="complement", ratio=D("1.0"))
GRANTED = Decision("P", D(100_000), "granted", date(2026, 1, 1), seq=1)


def inv(ref: str, amount: int, delivered: date, terms: int = 60) -> OpenItem:
    return OpenItem(ref, "EUR", D(amount), delivered, delivered + timedelta(days=terms))


def run(items, decisions=(GRANTED,), policies=(PRIMARY, TOP_UP), country="FR", valued=VALUED, rates=None):
    return evaluate(country=country, items=items, policies=list(policies), decisions=list(decisions),
                    valued_on=valued, rates=rates)


def covers(result):
    return [(c.invoice_ref, c.covered_primary, c.covered_top_up, c.uncovered, c.reason) for c in result.invoices]


def test_a_doubling():
    r = run([inv("I1", 80_000, date(2026, 2, 10)), inv("I2", 90_000, date(2026, 3, 1))])
    assert r.outstanding == 170_000
    assert covers(r) == [("I1", 80_000, 0, 0, None), ("I2", 20_000, 70_000, 0, None)]
    assert (r.covered_primary, r.covered_top_up, r.uncovered) == (100_000, 70_000, 0)
    assert r.indemnifiable == D("153000.00")
    assert r.status == "above_primary"
    assert r.utilisation == D("0.85")
    assert (r.primary_limit, r.top_up_limit) == (100_000, 100_000)
    assert r.not_due == 170_000


def test_b_over_cover():
    r = run([inv("I1", 80_000, date(2026, 2, 10)), inv("I2", 90_000, date(2026, 3, 1)),
             inv("I3", 50_000, date(2026, 3, 15))])
    assert (r.covered_primary, r.covered_top_up, r.uncovered) == (100_000, 100_000, 20_000)
    assert r.status == "above_cover"
    assert covers(r)[-1] == ("I3", 0, 30_000, 20_000, "above_limit")


def test_c_reduction():
    reduced = Decision("P", D(40_000), "reduced", date(2026, 3, 1), seq=2)
    r = run([inv("FEB", 60_000, date(2026, 2, 15)), inv("MAR", 30_000, date(2026, 3, 10))], [GRANTED, reduced])
    assert covers(r) == [("FEB", 60_000, 0, 0, None), ("MAR", 0, 30_000, 0, None)]
    assert r.uncovered == 0 and r.status == "above_primary"
    assert r.utilisation == D("1.125")
    assert (r.primary_limit, r.top_up_limit) == (40_000, 40_000)


def test_d_withdrawal_complement_adds_nothing_substitute_covers():
    withdrawn = Decision("P", D(0), "withdrawn", date(2026, 3, 1), seq=2)
    items = [inv("FEB", 60_000, date(2026, 2, 15)), inv("MAR", 30_000, date(2026, 3, 10))]
    r = run(items, [GRANTED, withdrawn])
    assert covers(r) == [("FEB", 60_000, 0, 0, None), ("MAR", 0, 0, 30_000, "no_limit")]
    assert r.status == "above_cover"

    substitute = Policy(ref="CAP", kind="top_up", currency="EUR", starts_on=date(2026, 1, 1),
                        ends_on=date(2026, 12, 31), indemnity_rate=D("0.80"), primary_ref="P", mode="substitute")
    own = Decision("CAP", D(50_000), "granted", date(2026, 3, 1), seq=3)
    r = run(items, [GRANTED, withdrawn, own], policies=[PRIMARY, substitute])
    assert covers(r) == [("FEB", 60_000, 0, 0, None), ("MAR", 0, 30_000, 0, None)]
    assert r.indemnifiable == D("78000.00")  # 60,000 x 0.90 + 30,000 x 0.80
    # A substitute never covers where the primary still grants a limit.
    r = run(items, [GRANTED, own], policies=[PRIMARY, substitute])
    assert r.covered_top_up == 0 and r.covered_primary == 90_000


def test_e_claim_deadline():
    item = OpenItem("I1", "EUR", D(10_000), date(2026, 1, 30), date(2026, 3, 31))
    on_deadline = run([item], valued=date(2026, 5, 30))
    assert on_deadline.invoices[0].claim_deadline == date(2026, 5, 30)
    assert on_deadline.uncovered == 0
    after = run([item], valued=date(2026, 5, 31))
    assert covers(after) == [("I1", 0, 0, 10_000, "claim_deadline_passed")]
    claimed = OpenItem("I1", "EUR", D(10_000), date(2026, 1, 30), date(2026, 3, 31), claim_filed_on=date(2026, 5, 30))
    assert run([claimed], valued=date(2026, 5, 31)).uncovered == 0
    late = OpenItem("I1", "EUR", D(10_000), date(2026, 1, 30), date(2026, 3, 31), claim_filed_on=date(2026, 5, 31))
    assert run([late], valued=date(2026, 6, 1)).invoices[0].reason == "claim_deadline_passed"


def test_e_postponed_due_date_keeps_the_original_deadline():
    item = OpenItem("I1", "EUR", D(10_000), date(2026, 1, 30), date(2026, 6, 30), original_due_date=date(2026, 3, 31))
    assert run([item], valued=date(2026, 5, 31)).invoices[0].reason == "claim_deadline_passed"


def test_f_territory_of_the_top_up():
    scoped = Policy(ref="T", kind="top_up", currency="EUR", starts_on=date(2026, 1, 1), ends_on=date(2026, 12, 31),
                    indemnity_rate=D("0.90"), primary_ref="P", mode="complement", countries=frozenset({"DE", "IT"}))
    items = [inv("I1", 80_000, date(2026, 2, 10)), inv("I2", 90_000, date(2026, 3, 1))]
    spain = run(items, policies=[PRIMARY, scoped], country="ES")
    assert (spain.covered_primary, spain.covered_top_up, spain.uncovered) == (100_000, 0, 70_000)
    assert spain.top_up_limit == 0
    germany = run(items, policies=[PRIMARY, scoped], country="DE")
    assert germany.covered_top_up == 70_000


def test_g_terms_beyond_the_max_credit_period():
    r = run([inv("LONG", 10_000, date(2026, 2, 1), terms=150)])
    assert covers(r) == [("LONG", 0, 0, 10_000, "terms_exceed_max_credit_period")]
    # The decision's own condition wins over the policy's.
    short = Decision("P", D(100_000), "granted", date(2026, 1, 1), seq=1, max_credit_period_days=30)
    assert run([inv("I", 10_000, date(2026, 2, 1), terms=60)], [short]).invoices[0].reason == (
        "terms_exceed_max_credit_period")


def test_primary_territory_and_period():
    europe = Policy(ref="P", kind="whole_turnover", currency="EUR", starts_on=date(2026, 1, 1),
                    ends_on=date(2026, 12, 31), indemnity_rate=D("0.9"), max_credit_period_days=120,
                    excluded_countries=frozenset({"RU"}))
    assert run([inv("I", 1000, date(2026, 2, 1))], policies=[europe], country="RU").invoices[0].reason == (
        "outside_territory")
    assert run([inv("I", 1000, date(2025, 12, 20))], policies=[europe]).invoices[0].reason == "outside_policy_period"


def test_stop_of_cover():
    p = Policy(ref="P", kind="whole_turnover", currency="EUR", starts_on=date(2026, 1, 1), ends_on=date(2026, 12, 31),
               indemnity_rate=D("0.9"), max_credit_period_days=120, claim_deadline_days=150, max_extension_days=30)
    old = OpenItem("OLD", "EUR", D(1000), date(2026, 1, 5), date(2026, 2, 4))  # + 30 days = 6 March
    before = OpenItem("BEFORE", "EUR", D(1000), date(2026, 3, 5), date(2026, 4, 4))
    after = OpenItem("AFTER", "EUR", D(1000), date(2026, 3, 10), date(2026, 4, 9))

    def history(paid_on=None):
        return [HistoryItem(i.ref, i.issue_date, i.due_date, paid_on if i is old else None)
                for i in (old, before, after)]

    stops = stop_periods(country="FR", history=history(), policies=[p], valued_on=VALUED)
    assert stops == [StopPeriod("P", date(2026, 3, 6), None, ("OLD",))]
    r = evaluate(country="FR", items=[old, before, after], policies=[p], decisions=[GRANTED], valued_on=VALUED,
                 stops=stops)
    assert r.stop_of_cover_from == date(2026, 3, 6)
    assert [c.reason for c in r.invoices] == [None, None, "delivered_during_stop_of_cover"]
    # Paid on 15 March: the stop ends that day, and the delivery made during it stays uncovered (rule 7).
    stops = stop_periods(country="FR", history=history(date(2026, 3, 15)), policies=[p], valued_on=VALUED)
    assert stops == [StopPeriod("P", date(2026, 3, 6), date(2026, 3, 15), ("OLD",))]
    r = evaluate(country="FR", items=[before, after], policies=[p], decisions=[GRANTED], valued_on=VALUED, stops=stops)
    assert r.stop_of_cover_from is None
    assert [c.reason for c in r.invoices] == [None, "delivered_during_stop_of_cover"]


def test_discretionary_limit_is_cancelled_by_any_insurer_decision():
    disc = Decision("P", D(20_000), "granted", date(2026, 1, 1), seq=1, source="discretionary")
    refused = Decision("P", D(0), "refused", date(2026, 2, 1), seq=2)
    items = [inv("JAN", 15_000, date(2026, 1, 20)), inv("FEB", 15_000, date(2026, 2, 20))]
    r = run(items, [disc, refused], policies=[PRIMARY])
    assert covers(r) == [("JAN", 15_000, 0, 0, None), ("FEB", 0, 0, 15_000, "no_limit")]


def test_expired_limit_gives_no_cover_for_later_deliveries():
    expiring = Decision("P", D(50_000), "granted", date(2026, 1, 1), seq=1, expires_on=date(2026, 2, 28))
    r = run([inv("FEB", 10_000, date(2026, 2, 10)), inv("MAR", 10_000, date(2026, 3, 5))], [expiring])
    assert [c.reason for c in r.invoices] == [None, "no_limit"]
    assert r.primary_limit == 0


def test_currency_conversion_and_missing_rate():
    rates = Rates({("EUR", "USD"): D("1.25"), ("EUR", "GBP"): D("0.80")})
    usd = OpenItem("USD1", "USD", D("12500.00"), date(2026, 2, 1), date(2026, 3, 1))
    gbp = OpenItem("GBP1", "GBP", D("800.00"), date(2026, 2, 1), date(2026, 3, 1))
    r = run([usd, gbp], rates=rates)
    assert [(c.invoice_ref, c.open_balance) for c in r.invoices] == [("GBP1", D("1000.00")), ("USD1", D("10000.00"))]
    assert r.outstanding == D("11000.00") and not r.errors
    chf = OpenItem("CHF1", "CHF", D("500.00"), date(2026, 2, 1), date(2026, 3, 1))
    r = run([usd, chf], rates=rates)
    assert r.errors == ["missing FX rate CHF/EUR on or before 2026-03-20"]
    assert r.outstanding == D("10000.00")
    assert [c.reason for c in r.invoices if c.invoice_ref == "CHF1"] == ["missing_fx_rate"]
    assert Rates({("EUR", "USD"): D("1.25"), ("EUR", "GBP"): D("0.80")}).rate("USD", "GBP") == D("0.64")


def test_no_policy_no_limit_status():
    r = run([inv("I", 1000, date(2026, 2, 1))], decisions=[])
    assert r.status == "no_cover" and r.invoices[0].reason == "no_limit"
    assert run([], decisions=[]).status == "ok"


def test_aging_buckets():
    due = lambda days: OpenItem(f"D{days}", "EUR", D(100), date(2026, 1, 1), VALUED - timedelta(days=days))  # noqa: E731
    big = Decision("P", D(10**6), "granted", date(2026, 1, 1))
    r = run([due(0), due(-5), due(1), due(30), due(31), due(60), due(61), due(90), due(91)], [big],
            policies=[Policy(ref="P", kind="whole_turnover", currency="EUR", starts_on=date(2026, 1, 1),
                             ends_on=date(2026, 12, 31), indemnity_rate=D(1), claim_deadline_days=365)])
    assert (r.not_due, r.overdue_1_30, r.overdue_31_60, r.overdue_61_90, r.overdue_over_90) == (200, 200, 200, 200, 100)
