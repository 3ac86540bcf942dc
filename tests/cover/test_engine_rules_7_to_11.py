"""DOMAIN.md worked examples H to K and rules 7 to 11, on the pure engine."""

from dataclasses import replace
from datetime import date, timedelta
from decimal import Decimal as D

from app.cover.engine import (
    Decision,
    HistoryItem,
    OpenItem,
    Policy,
    Rates,
    StopPeriod,
    Terms,
    evaluate,
    stop_periods,
)

PRIMARY = Policy(ref="P", kind="whole_turnover", currency="EUR", starts_on=date(2026, 1, 1),
                 ends_on=date(2026, 12, 31), indemnity_rate=D("0.90"), max_credit_period_days=120,
                 claim_deadline_days=60)
TOP_UP = Policy(ref="T", kind="top_up", currency="EUR", starts_on=date(2026, 1, 1), ends_on=date(2026, 12, 31),
                indemnity_rate=D("0.90"), primary_ref="P", mode="complement", ratio=D("1.0"))
GRANTED = Decision("P", D(100_000), "granted", date(2026, 1, 1), seq=1)


def inv(ref: str, amount: int, delivered: date, terms: int = 60, currency: str = "EUR") -> OpenItem:
    return OpenItem(ref, currency, D(amount), delivered, delivered + timedelta(days=terms))


def test_h_stop_of_cover_is_history():
    primary = replace(PRIMARY, max_extension_days=30)
    x = inv("X", 20_000, date(2026, 1, 10), terms=30)  # due 9 Feb; + 30 days = 11 March
    y = inv("Y", 30_000, date(2026, 3, 20))
    z = inv("Z", 25_000, date(2026, 4, 5))
    valued = date(2026, 4, 20)
    history = [HistoryItem("X", x.issue_date, x.due_date, date(2026, 4, 1)),
               HistoryItem("Y", y.issue_date, y.due_date, None), HistoryItem("Z", z.issue_date, z.due_date, None)]
    stops = stop_periods(country="FR", history=history, policies=[primary], valued_on=valued)
    assert stops == [StopPeriod("P", date(2026, 3, 11), date(2026, 4, 1), ("X",))]
    r = evaluate(country="FR", items=[y, z], policies=[primary], decisions=[GRANTED], valued_on=valued, stops=stops)
    assert [(c.invoice_ref, c.covered_primary, c.uncovered, c.reason) for c in r.invoices] == [
        ("Y", 0, 30_000, "delivered_during_stop_of_cover"), ("Z", 25_000, 0, None)]
    assert (r.covered_primary, r.uncovered) == (25_000, 30_000)
    # Still unpaid: the stop is open-ended and Z would be uncovered too.
    open_stop = stop_periods(country="FR", history=[replace(history[0], paid_in_full_on=None)],
                             policies=[primary], valued_on=valued)
    assert open_stop == [StopPeriod("P", date(2026, 3, 11), None, ("X",))]
    # Delivered on the stop's first day or on the day it ends: covered.
    edge = [inv("ON-START", 1_000, date(2026, 3, 11)), inv("ON-END", 1_000, date(2026, 4, 1))]
    r = evaluate(country="FR", items=edge, policies=[primary], decisions=[GRANTED], valued_on=valued, stops=stops)
    assert r.uncovered == 0


def test_overlapping_stops_merge_and_end_with_the_last_invoice_paid():
    primary = replace(PRIMARY, max_extension_days=10)
    history = [HistoryItem("A", date(2026, 1, 1), date(2026, 1, 31), date(2026, 3, 1)),  # stop 10 Feb .. 1 Mar
               HistoryItem("B", date(2026, 1, 10), date(2026, 2, 9), date(2026, 3, 10)),  # stop 19 Feb .. 10 Mar
               HistoryItem("C", date(2026, 1, 5), date(2026, 2, 4), date(2026, 2, 14))]  # paid before 14 Feb: none
    stops = stop_periods(country="FR", history=history, policies=[primary], valued_on=date(2026, 4, 1))
    assert stops == [StopPeriod("P", date(2026, 2, 10), date(2026, 3, 10), ("A", "B"))]


def test_i_endorsements_are_not_retroactive():
    shorter = Terms(effective_from=date(2026, 3, 1), ends_on=date(2026, 12, 31), indemnity_rate=D("0.90"),
                    max_credit_period_days=90, claim_deadline_days=60)
    no_italy = replace(shorter, effective_from=date(2026, 4, 1), excluded_countries=frozenset({"IT"}))
    primary = replace(PRIMARY, endorsements=(shorter, no_italy))
    feb = inv("FEB", 10_000, date(2026, 2, 15), terms=100)
    mar = inv("MAR", 10_000, date(2026, 3, 5), terms=100)
    r = evaluate(country="FR", items=[feb, mar], policies=[primary], decisions=[GRANTED], valued_on=date(2026, 3, 20))
    assert [(c.invoice_ref, c.reason) for c in r.invoices] == [("FEB", None), ("MAR", "terms_exceed_max_credit_period")]
    italy = [inv("IT-MAR", 10_000, date(2026, 3, 25), terms=60), inv("IT-APR", 10_000, date(2026, 4, 2), terms=60)]
    r = evaluate(country="IT", items=italy, policies=[primary], decisions=[GRANTED], valued_on=date(2026, 4, 20))
    assert [(c.invoice_ref, c.reason) for c in r.invoices] == [("IT-MAR", None), ("IT-APR", "outside_territory")]


def test_indemnity_rate_and_top_up_ratio_by_delivery_date():
    primary = replace(PRIMARY, endorsements=(Terms(date(2026, 3, 1), date(2026, 12, 31), D("0.80"), 120, 60),))
    top = replace(TOP_UP, endorsements=(Terms(date(2026, 3, 1), date(2026, 12, 31), D("0.90"), ratio=D("0.5")),))
    items = [inv("FEB", 120_000, date(2026, 2, 1)), inv("MAR", 60_000, date(2026, 3, 5))]
    r = evaluate(country="FR", items=items, policies=[primary, top], decisions=[GRANTED], valued_on=date(2026, 3, 20))
    # FEB: primary 100,000 at 0.90, Top Up 20,000 (limit 100,000 then); MAR: Top Up limit 50,000, 20,000 used.
    assert [(c.covered_primary, c.covered_top_up, c.uncovered) for c in r.invoices] == [
        (100_000, 20_000, 0), (0, 30_000, 30_000)]
    assert r.indemnifiable == D("135000.00")  # 100,000 x 0.90 + 50,000 x 0.90
    assert r.top_up_limit == 50_000


def test_j_missing_rate_is_unknown_never_zero():
    capped = replace(TOP_UP, currency="USD", per_buyer_cap=D(60_000))
    items = [inv("I1", 80_000, date(2026, 2, 10)), inv("I2", 90_000, date(2026, 3, 1))]
    r = evaluate(country="FR", items=items, policies=[PRIMARY, capped], decisions=[GRANTED],
                 valued_on=date(2026, 3, 20), rates=Rates())
    assert r.covered_top_up == 0 and r.covered_primary == 100_000 and r.uncovered == 70_000
    assert r.missing_rates == {("USD", "EUR")}
    assert r.errors == ["missing FX rate USD/EUR on or before 2026-03-20"]
    assert r.status != "ok" and r.utilisation is None
    assert r.invoices[1].reason == "missing_fx_rate"
    # Once the rate arrives: the cap of 60,000 USD is 50,000 EUR.
    r = evaluate(country="FR", items=items, policies=[PRIMARY, capped], decisions=[GRANTED],
                 valued_on=date(2026, 3, 20), rates=Rates({("EUR", "USD"): D("1.2")}))
    assert (r.covered_top_up, r.uncovered, r.errors) == (50_000, 20_000, [])
    # Within the limits and a rate missing: the status is not ok either.
    small = [inv("S", 10_000, date(2026, 2, 10))]
    r = evaluate(country="FR", items=small, policies=[PRIMARY, capped], decisions=[GRANTED],
                 valued_on=date(2026, 3, 20))
    assert r.uncovered == 0 and r.status == "incomplete"


def test_a_substitute_never_starts_because_a_conversion_failed():
    usd_primary = replace(PRIMARY, ref="PUS", currency="USD", covered_countries=frozenset({"US"}))
    substitute = replace(TOP_UP, ref="CAP", mode="substitute", primary_ref="PUS")
    ds = [Decision("PUS", D(100_000), "granted", date(2026, 1, 1), seq=1),
          Decision("CAP", D(50_000), "granted", date(2026, 1, 1), seq=2)]
    r = evaluate(country="US", items=[inv("U1", 10_000, date(2026, 2, 1), currency="USD")],
                 policies=[usd_primary, substitute], decisions=ds, valued_on=date(2026, 3, 20))
    assert (r.covered_primary, r.covered_top_up) == (10_000, 0)  # the result is in USD: the primary's currency


def test_k_discretionary_limits_and_a_complement_top_up():
    disc = Decision("P", D(15_000), "granted", date(2026, 1, 1), seq=1, source="discretionary")
    insurer = Decision("P", D(50_000), "granted", date(2026, 5, 1), seq=2)
    items = [inv("APR", 20_000, date(2026, 4, 10)), inv("MAY", 60_000, date(2026, 5, 5))]
    r = evaluate(country="FR", items=items, policies=[PRIMARY, TOP_UP], decisions=[disc, insurer],
                 valued_on=date(2026, 5, 20))
    # APR: discretionary 15,000; the complement Top Up does not follow a discretionary limit.
    # MAY: the insurer's 50,000 (35,000 left after APR), and the Top Up 50,000 above it.
    assert [(c.covered_primary, c.covered_top_up, c.uncovered) for c in r.invoices] == [
        (15_000, 0, 5_000), (35_000, 25_000, 0)]
    follows = replace(TOP_UP, follows_discretionary=True)
    r = evaluate(country="FR", items=items[:1], policies=[PRIMARY, follows], decisions=[disc],
                 valued_on=date(2026, 4, 20))
    assert (r.covered_primary, r.covered_top_up) == (15_000, 5_000)


def test_rule_11_substitute_needs_a_refusal():
    substitute = replace(TOP_UP, ref="CAP", mode="substitute")
    own = Decision("CAP", D(50_000), "granted", date(2026, 1, 1), seq=5)
    item = [inv("I", 10_000, date(2026, 2, 1))]
    never_asked = evaluate(country="FR", items=item, policies=[PRIMARY, substitute], decisions=[own],
                           valued_on=date(2026, 3, 20))
    assert never_asked.covered_top_up == 0 and never_asked.invoices[0].reason == "no_limit"
    for refusal in (Decision("P", D(0), "refused", date(2026, 1, 1), seq=1),
                    Decision("P", D(0), "withdrawn", date(2026, 1, 1), seq=1),
                    Decision("P", D(0), "reduced", date(2026, 1, 1), seq=1)):
        r = evaluate(country="FR", items=item, policies=[PRIMARY, substitute], decisions=[refusal, own],
                     valued_on=date(2026, 3, 20))
        assert r.covered_top_up == 10_000, refusal.status
