"""The oracle (tests/oracle.py) on DOMAIN.md's worked examples A to K, edge cases, and its own invariants.

Everything here is computed by the oracle alone: these tests check that the second reading of the rules says what
DOMAIN.md says, before the engine is held against it.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import date, timedelta
from decimal import Decimal as D

from hypothesis import HealthCheck, given, settings

from tests.cover.scenarios import scenarios
from tests.oracle import (
    DecisionSpec,
    InvoiceSpec,
    PolicySpec,
    Scenario,
    Terms,
    convert,
    evaluate,
    quantize,
    rate,
)

JAN_1 = date(2026, 1, 1)
MAR_1 = date(2026, 3, 1)
MAR_20 = date(2026, 3, 20)


def terms(**changes) -> Terms:
    """The worked examples' terms: 2026, indemnity 0.90, claim deadline due + 60, maximum credit period 120."""
    base = Terms(JAN_1, date(2026, 12, 31), D("0.90"), 120, 60, None, frozenset(), frozenset(), {})
    return replace(base, **changes)


def primary(*versions: Terms, ref: str = "P", currency: str = "EUR", starts_on: date = JAN_1) -> PolicySpec:
    return PolicySpec(ref, "whole_turnover", currency, starts_on, versions or (terms(),))


def top_up(*versions: Terms, ref: str = "U", mode: str = "complement", currency: str = "EUR",
           primary_ref: str = "P") -> PolicySpec:
    return PolicySpec(ref, "top_up", currency, JAN_1, versions or (terms(),), primary_ref=primary_ref, mode=mode)


def decision(amount: str | int, effective_from: date = JAN_1, *, seq: int = 1, policy: str = "P",
             status: str = "granted", **extra) -> DecisionSpec:
    return DecisionSpec(policy, status, D(amount), effective_from, seq, **extra)


def invoice(ref: str, amount: str | int, issue: date, days: int = 60, *, currency: str = "EUR",
            due: date | None = None, settlements: tuple = (), claim: date | None = None) -> InvoiceSpec:
    original_due = issue + timedelta(days=days)
    return InvoiceSpec(ref, currency, D(amount), issue, due or original_due, original_due,
                       tuple((day, D(a)) for day, a in settlements), claim)


def scenario(*invoices: InvoiceSpec, policies=None, decisions=None, valued_on: date = MAR_20, country: str = "FR",
             rates=None, default_currency: str = "EUR") -> Scenario:
    """The worked examples' setting: a EUR primary with 100,000 from 1 January and a complement Top Up, ratio 1."""
    return Scenario(
        valued_on, country, default_currency,
        tuple(policies) if policies is not None else (primary(), top_up()),
        tuple(decisions) if decisions is not None else (decision(100_000),),
        tuple(invoices), dict(rates or {}))


def example_a_invoices() -> list[InvoiceSpec]:
    return [invoice("A1", 80_000, date(2026, 2, 10)), invoice("A2", 90_000, MAR_1)]


# ------------------------------------------------------------------------------------------ worked examples A-K


def test_a_doubling() -> None:
    r = evaluate(scenario(*example_a_invoices()))
    assert r.currency == "EUR"
    assert r.outstanding == D(170_000)
    assert r.not_due == D(170_000)
    assert [(i.ref, i.covered_primary, i.covered_top_up, i.uncovered) for i in r.invoices] == [
        ("A1", D(80_000), D(0), D(0)), ("A2", D(20_000), D(70_000), D(0))]
    assert r.covered_primary == D(100_000)
    assert r.covered_top_up == D(70_000)
    assert r.uncovered == D(0)
    assert r.indemnifiable == D(153_000)
    assert r.status == "above_primary"
    assert (r.primary_limit, r.top_up_limit) == (D(100_000), D(100_000))
    assert r.utilisation == D("0.85")
    assert not r.has_errors


def test_b_over_cover() -> None:
    r = evaluate(scenario(*example_a_invoices(), invoice("B3", 50_000, date(2026, 3, 15))))
    assert r.outstanding == D(220_000)
    assert (r.covered_primary, r.covered_top_up, r.uncovered) == (D(100_000), D(100_000), D(20_000))
    b3 = r.invoice("B3")
    assert (b3.covered_primary, b3.covered_top_up, b3.uncovered, b3.reason) == (D(0), D(30_000), D(20_000),
                                                                                "above_limit")
    assert r.status == "above_cover"
    assert r.utilisation == D("1.1")


def reduction(status: str = "reduced", amount: int = 40_000) -> list[DecisionSpec]:
    return [decision(100_000, seq=1), decision(amount, MAR_1, seq=2, status=status)]


def test_c_reduction() -> None:
    r = evaluate(scenario(invoice("FEB", 60_000, date(2026, 2, 15)), invoice("MAR", 30_000, date(2026, 3, 10)),
                          decisions=reduction()))
    feb, mar = r.invoice("FEB"), r.invoice("MAR")
    assert (feb.covered_primary, feb.covered_top_up) == (D(60_000), D(0))
    assert (mar.covered_primary, mar.covered_top_up) == (D(0), D(30_000))
    assert r.uncovered == D(0)
    assert r.status == "above_primary"
    assert (r.primary_limit, r.top_up_limit) == (D(40_000), D(40_000))
    assert r.utilisation == D("1.125")


def test_d_withdrawal_complement_gives_nothing() -> None:
    r = evaluate(scenario(invoice("FEB", 60_000, date(2026, 2, 15)), invoice("MAR", 30_000, date(2026, 3, 10)),
                          decisions=reduction("withdrawn", 0)))
    feb, mar = r.invoice("FEB"), r.invoice("MAR")
    assert (feb.covered_primary, feb.covered_top_up, feb.uncovered) == (D(60_000), D(0), D(0))
    assert (mar.covered_primary, mar.covered_top_up, mar.uncovered, mar.reason) == (D(0), D(0), D(30_000), "no_limit")
    assert r.status == "above_cover"
    assert (r.primary_limit, r.top_up_limit) == (D(0), D(0))


def test_d_withdrawal_substitute_covers_with_its_own_limit() -> None:
    policies = (primary(), top_up(), top_up(ref="V", mode="substitute"))
    decisions = [*reduction("withdrawn", 0), decision(50_000, policy="V", seq=3)]
    r = evaluate(scenario(invoice("FEB", 60_000, date(2026, 2, 15)), invoice("MAR", 30_000, date(2026, 3, 10)),
                          policies=policies, decisions=decisions))
    feb, mar = r.invoice("FEB"), r.invoice("MAR")
    assert (feb.covered_primary, feb.covered_top_up) == (D(60_000), D(0))
    assert (mar.covered_primary, mar.covered_top_up, mar.uncovered) == (D(0), D(30_000), D(0))
    assert r.status == "above_primary"
    assert (r.primary_limit, r.top_up_limit) == (D(0), D(50_000))
    assert r.utilisation == D("1.8")


def test_e_claim_deadline() -> None:
    due_31_march = invoice("E", 10_000, date(2026, 1, 30), 60)
    assert due_31_march.original_due_date == date(2026, 3, 31)
    on_30_may = evaluate(scenario(due_31_march, valued_on=date(2026, 5, 30))).invoice("E")
    assert on_30_may.claim_deadline == date(2026, 5, 30)
    assert [on_30_may.claim_deadline - timedelta(days=n) for n in (14, 7, 1)] == [
        date(2026, 5, 16), date(2026, 5, 23), date(2026, 5, 29)]
    assert (on_30_may.covered_primary, on_30_may.reason) == (D(10_000), None)

    on_31_may = evaluate(scenario(due_31_march, valued_on=date(2026, 5, 31)))
    assert (on_31_may.invoice("E").uncovered, on_31_may.invoice("E").reason) == (D(10_000), "claim_deadline_passed")
    assert on_31_may.status == "above_cover"

    claimed_in_time = evaluate(scenario(replace(due_31_march, claim_filed_on=date(2026, 5, 29)),
                                        valued_on=date(2026, 5, 31)))
    assert claimed_in_time.invoice("E").covered_primary == D(10_000)
    on_the_day = evaluate(scenario(replace(due_31_march, claim_filed_on=date(2026, 5, 30)), valued_on=date(2026, 6, 9)))
    assert on_the_day.invoice("E").reason is None
    too_late = evaluate(scenario(replace(due_31_march, claim_filed_on=date(2026, 5, 31)), valued_on=date(2026, 6, 9)))
    assert too_late.invoice("E").reason == "claim_deadline_passed"


def test_e_postponing_the_due_date_moves_the_bucket_not_the_deadline() -> None:
    postponed = invoice("E", 10_000, date(2026, 1, 30), 60, due=date(2026, 5, 15))
    r = evaluate(scenario(postponed, valued_on=date(2026, 5, 31)))
    assert r.invoice("E").claim_deadline == date(2026, 5, 30)
    assert r.invoice("E").reason == "claim_deadline_passed"
    assert (r.overdue_1_30, r.not_due) == (D(10_000), D(0))


def test_f_top_up_scope() -> None:
    scoped = (primary(), top_up(terms(scope=frozenset({"DE", "IT"}))))
    spain = evaluate(scenario(*example_a_invoices(), policies=scoped, country="ES"))
    assert (spain.covered_primary, spain.covered_top_up, spain.uncovered) == (D(100_000), D(0), D(70_000))
    assert spain.top_up_limit == D(0)
    assert spain.status == "above_cover"
    germany = evaluate(scenario(*example_a_invoices(), policies=scoped, country="DE"))
    assert (germany.covered_primary, germany.covered_top_up, germany.uncovered) == (D(100_000), D(70_000), D(0))


def test_g_terms_beyond_the_maximum_credit_period() -> None:
    r = evaluate(scenario(invoice("G", 10_000, date(2026, 1, 5), 150), decisions=[decision(1_000_000)]))
    g = r.invoice("G")
    assert (g.covered_primary, g.covered_top_up, g.uncovered, g.reason) == (
        D(0), D(0), D(10_000), "terms_exceed_max_credit_period")
    assert r.status == "above_cover"
    exactly_120 = evaluate(scenario(invoice("G", 10_000, date(2026, 1, 5), 120)))
    assert exactly_120.invoice("G").reason is None


def test_g_the_decision_condition_then_the_country_override() -> None:
    sixty_days = invoice("G", 10_000, date(2026, 2, 1), 60)
    condition = evaluate(scenario(sixty_days, decisions=[decision(100_000, max_credit_period_days=45)]))
    assert condition.invoice("G").reason == "terms_exceed_max_credit_period"
    override = (primary(terms(country_overrides={"FR": (45, None)})), top_up())
    assert evaluate(scenario(sixty_days, policies=override)).invoice("G").reason == "terms_exceed_max_credit_period"
    assert evaluate(scenario(sixty_days, policies=override, country="DE")).invoice("G").reason is None
    # The decision's own condition wins over the override, even when longer.
    both = evaluate(scenario(sixty_days, policies=override, decisions=[decision(100_000, max_credit_period_days=90)]))
    assert both.invoice("G").reason is None


def example_h(x_paid_on: date | None, valued_on: date = date(2026, 4, 20)) -> Scenario:
    x = invoice("X", 20_000, date(2026, 1, 10), 30, settlements=((x_paid_on, 20_000),) if x_paid_on else ())
    assert x.original_due_date == date(2026, 2, 9)
    return scenario(x, invoice("Y", 30_000, date(2026, 3, 20)), invoice("Z", 25_000, date(2026, 4, 5)),
                    policies=(primary(terms(max_extension_days=30)),), valued_on=valued_on)


def test_h_stop_of_cover() -> None:
    r = evaluate(example_h(date(2026, 4, 1)))
    y, z = r.invoice("Y"), r.invoice("Z")
    assert (y.uncovered, y.reason) == (D(30_000), "delivered_during_stop_of_cover")
    assert (z.covered_primary, z.reason) == (D(25_000), None)
    assert (r.covered_primary, r.uncovered, r.outstanding) == (D(25_000), D(30_000), D(55_000))
    assert r.invoice("X").open == D(0)
    assert r.stop_periods == {"P": [(date(2026, 3, 11), date(2026, 4, 1), ("X",))]}


def test_h_while_x_is_unpaid_every_later_delivery_is_stopped() -> None:
    r = evaluate(example_h(None))
    assert r.invoice("Z").reason == "delivered_during_stop_of_cover"
    assert r.stop_periods == {"P": [(date(2026, 3, 11), None, ("X",))]}
    # X itself, delivered before its own stop, is not: its claim deadline (10 April) passed unclaimed.
    assert r.invoice("X").reason == "claim_deadline_passed"
    x_claimed = replace(example_h(None).invoices[0], claim_filed_on=date(2026, 4, 1))
    claimed = replace(example_h(None), invoices=(x_claimed,))
    assert evaluate(claimed).invoice("X").covered_primary == D(20_000)


def test_h_the_stop_is_strict_on_both_sides() -> None:
    x = invoice("X", 20_000, date(2026, 1, 10), 30, settlements=((date(2026, 4, 1), 20_000),))
    on = {day: invoice(f"D{day.isoformat()}", 1_000, day) for day in
          (date(2026, 3, 11), date(2026, 3, 12), date(2026, 3, 31), date(2026, 4, 1))}
    r = evaluate(scenario(x, *on.values(), policies=(primary(terms(max_extension_days=30)),),
                          valued_on=date(2026, 4, 20)))
    assert [r.invoice(i.ref).reason for i in on.values()] == [
        None, "delivered_during_stop_of_cover", "delivered_during_stop_of_cover", None]


def test_h_a_claim_does_not_end_the_stop_and_paying_on_the_start_day_avoids_it() -> None:
    claimed = replace(example_h(None), invoices=(
        invoice("X", 20_000, date(2026, 1, 10), 30, claim=date(2026, 3, 15)),
        invoice("Z", 25_000, date(2026, 4, 5))))
    assert evaluate(claimed).invoice("Z").reason == "delivered_during_stop_of_cover"
    assert evaluate(example_h(date(2026, 3, 11))).stop_periods == {}
    assert evaluate(example_h(date(2026, 3, 12))).stop_periods == {"P": [(date(2026, 3, 11), date(2026, 3, 12),
                                                                          ("X",))]}


def test_h_overlapping_stops_merge_and_touching_ones_do_not() -> None:
    policies = (primary(terms(max_extension_days=30)),)
    x = invoice("X", 1_000, date(2026, 1, 10), 30, settlements=((date(2026, 4, 1), 1_000),))  # stop Mar 11 - Apr 1
    w = invoice("W", 1_000, date(2026, 1, 20), 30, settlements=((date(2026, 5, 1), 1_000),))  # stop Mar 21 - May 1
    v = invoice("V", 1_000, date(2026, 4, 1), 0, settlements=((date(2026, 6, 1), 1_000),))  # stop May 1 - Jun 1
    r = evaluate(scenario(x, w, v, policies=policies, valued_on=date(2026, 7, 1)))
    assert r.stop_periods == {"P": [(date(2026, 3, 11), date(2026, 5, 1), ("W", "X")),
                                    (date(2026, 5, 1), date(2026, 6, 1), ("V",))]}


def test_i_endorsement_of_the_maximum_credit_period() -> None:
    endorsed = (primary(terms(), terms(effective_from=MAR_1, max_credit_period_days=90)), top_up())
    r = evaluate(scenario(invoice("FEB", 10_000, date(2026, 2, 15), 100), invoice("MAR", 10_000, date(2026, 3, 5), 100),
                          policies=endorsed))
    assert (r.invoice("FEB").covered_primary, r.invoice("FEB").reason) == (D(10_000), None)
    assert (r.invoice("MAR").uncovered, r.invoice("MAR").reason) == (D(10_000), "terms_exceed_max_credit_period")


def test_i_endorsement_excluding_italy() -> None:
    endorsed = (primary(terms(), terms(effective_from=date(2026, 4, 1), excluded_countries=frozenset({"IT"}))),
                top_up())
    r = evaluate(scenario(invoice("MAR", 10_000, date(2026, 3, 15)), invoice("APR", 10_000, date(2026, 4, 5)),
                          policies=endorsed, country="IT", valued_on=date(2026, 4, 20)))
    assert (r.invoice("MAR").covered_primary, r.invoice("MAR").reason) == (D(10_000), None)
    assert (r.invoice("APR").uncovered, r.invoice("APR").reason, r.invoice("APR").policy_ref) == (
        D(10_000), "outside_territory", None)
    # Italy is outside the primary today: no limit shown, the tenant's currency.
    assert (r.primary_limit, r.top_up_limit, r.currency) == (D(0), D(0), "EUR")


def usd_capped_top_up(rates: dict) -> Scenario:
    policies = (primary(), top_up(terms(per_buyer_cap=D(60_000)), currency="USD"))
    return scenario(*example_a_invoices(), policies=policies, rates=rates)


def test_j_missing_rate_knocks_the_top_up_out() -> None:
    r = evaluate(usd_capped_top_up({("EUR", "GBP"): D("0.86")}))
    assert (r.covered_primary, r.covered_top_up, r.uncovered) == (D(100_000), D(0), D(70_000))
    assert r.invoice("A2").reason == "missing_fx_rate"
    assert r.has_errors
    assert r.missing_pairs == {("USD", "EUR")}
    assert r.status != "ok"
    assert r.status == "above_cover"
    assert (r.primary_limit, r.top_up_limit, r.utilisation) == (D(100_000), None, None)


def test_j_once_the_rate_arrives_the_figures_are_complete() -> None:
    r = evaluate(usd_capped_top_up({("EUR", "USD"): D("1.2")}))  # the cap: 60,000 USD = 50,000.00 EUR
    assert not r.has_errors and r.missing_pairs == set()
    assert (r.covered_primary, r.covered_top_up, r.uncovered) == (D(100_000), D(50_000), D(20_000))
    assert (r.top_up_limit, r.utilisation) == (D(50_000), D("1.1333"))
    assert r.status == "above_cover"
    generous = evaluate(usd_capped_top_up({("EUR", "USD"): D("0.5")}))  # the cap: 120,000 EUR
    assert (generous.covered_top_up, generous.status) == (D(70_000), "above_primary")


def discretionary(follows: bool = False, *extra: DecisionSpec) -> Scenario:
    return scenario(
        invoice("APR", 20_000, date(2026, 4, 10)), invoice("MAY", 40_000, date(2026, 5, 5)),
        policies=(primary(), top_up(terms(follows_discretionary=follows))),
        decisions=[decision(15_000, seq=1, source="discretionary"), decision(50_000, date(2026, 5, 1), seq=2),
                   *extra],
        valued_on=date(2026, 5, 20))


def test_k_discretionary_then_insurer() -> None:
    r = evaluate(discretionary())
    apr, may = r.invoice("APR"), r.invoice("MAY")
    assert (apr.covered_primary, apr.covered_top_up, apr.uncovered, apr.reason) == (D(15_000), D(0), D(5_000),
                                                                                    "above_limit")
    assert (may.covered_primary, may.covered_top_up, may.uncovered) == (D(35_000), D(5_000), D(0))
    assert (r.primary_limit, r.top_up_limit, r.utilisation) == (D(50_000), D(50_000), D("0.6"))


def test_k_a_top_up_that_follows_discretionary_limits() -> None:
    r = evaluate(discretionary(True))
    assert (r.invoice("APR").covered_top_up, r.invoice("MAY").covered_top_up, r.uncovered) == (D(5_000), D(5_000), 0)
    assert r.status == "above_primary"


def test_k_the_insurer_cancels_discretionary_limits_from_its_date() -> None:
    later = decision(25_000, date(2026, 5, 10), seq=3, source="discretionary")
    r = evaluate(replace(discretionary(False, later), invoices=(invoice("MAY", 60_000, date(2026, 5, 15)),)))
    assert r.invoice("MAY").covered_primary == D(50_000)
    refused = evaluate(scenario(invoice("MAR", 10_000, date(2026, 3, 10)), decisions=[
        decision(15_000, seq=1, source="discretionary"), decision(0, MAR_1, seq=2, status="refused")]))
    assert (refused.invoice("MAR").covered_primary, refused.invoice("MAR").reason) == (D(0), "no_limit")


# ------------------------------------------------------------------------------------------------- edge cases


def test_quantize_rounds_half_up_to_the_currency_minor_units() -> None:
    assert quantize(D("0.005"), "EUR") == D("0.01")
    assert quantize(D("2.5"), "JPY") == D(3)
    assert quantize(D("1.0005"), "KWD") == D("1.001")


def test_rates_direct_inverse_through_eur_and_never_one_to_one() -> None:
    rates = {("EUR", "USD"): D("1.25"), ("EUR", "GBP"): D("0.8"), ("USD", "JPY"): D("150")}
    assert rate(rates, "USD", "JPY") == D(150)
    assert rate(rates, "JPY", "USD") == D(1) / D(150)
    assert rate(rates, "USD", "EUR") == D("0.8")
    assert rate(rates, "USD", "GBP") == D("0.64")
    assert rate(rates, "GBP", "JPY") is None
    assert convert(rates, D("100"), "USD", "GBP") == D("64.00")
    assert convert(rates, D("100.01"), "USD", "JPY") == D(15002)


def test_an_invoice_without_a_rate_is_unknown_not_zero() -> None:
    r = evaluate(scenario(invoice("USD", 1_000, date(2026, 3, 1), currency="USD"),
                          invoice("EUR", 1_000, date(2026, 3, 2))))
    usd = r.invoice("USD")
    assert (usd.open, usd.uncovered, usd.reason) == (None, None, "missing_fx_rate")
    assert (r.outstanding, r.covered_primary, r.uncovered) == (D(1_000), D(1_000), D(0))
    assert (r.status, r.missing_pairs) == ("incomplete", {("USD", "EUR")})


def test_a_settled_invoice_needs_no_rate() -> None:
    paid = invoice("USD", 1_000, date(2026, 3, 1), currency="USD", settlements=((date(2026, 3, 5), 1_000),))
    r = evaluate(scenario(paid))
    assert (r.status, r.has_errors, r.outstanding) == ("ok", False, D(0))


def test_invoices_in_another_currency_are_converted_before_the_walk() -> None:
    r = evaluate(scenario(invoice("USD", "125000.00", date(2026, 3, 1), currency="USD"),
                          rates={("EUR", "USD"): D("1.25")}))
    assert (r.invoice("USD").open, r.invoice("USD").covered_primary) == (D(100_000), D(100_000))


def test_same_day_decisions_the_last_recorded_wins_and_expiry_leaves_none() -> None:
    same_day = [decision(50_000, MAR_1, seq=2), decision(30_000, MAR_1, seq=1)]
    r = evaluate(scenario(invoice("I", 100_000, date(2026, 3, 10)), policies=(primary(),), decisions=same_day))
    assert r.invoice("I").covered_primary == D(50_000)
    expired = [decision(100_000, seq=1), decision(80_000, MAR_1, seq=2, expires_on=date(2026, 3, 5))]
    r = evaluate(scenario(invoice("I", 10_000, date(2026, 3, 10)), policies=(primary(),), decisions=expired))
    assert (r.invoice("I").covered_primary, r.invoice("I").reason) == (D(0), "no_limit")
    assert (r.primary_limit, r.status) == (D(0), "no_cover")


def test_a_substitute_needs_a_refusal_not_a_missing_decision() -> None:
    r = evaluate(scenario(invoice("I", 10_000, date(2026, 3, 10)), policies=(primary(), top_up(mode="substitute")),
                          decisions=[decision(50_000, policy="U")]))
    assert (r.covered_top_up, r.invoice("I").reason, r.status) == (D(0), "no_limit", "no_cover")
    zero = evaluate(scenario(invoice("I", 10_000, date(2026, 3, 10)), policies=(primary(), top_up(mode="substitute")),
                             decisions=[decision(0, status="reduced"), decision(50_000, policy="U", seq=2)]))
    assert zero.covered_top_up == D(10_000)


def test_a_substitute_never_starts_because_a_conversion_failed() -> None:
    # P1 (USD, ended 30 June) governs a March delivery; the buyer's primary today is P2 (EUR); no USD rate.
    policies = (primary(terms(ends_on=date(2026, 6, 30)), ref="P1", currency="USD"),
                primary(ref="P2", starts_on=date(2026, 7, 1)),
                top_up(ref="S", mode="substitute", primary_ref="P1"))
    decisions = [decision(50_000, policy="P1"), decision(50_000, policy="S", seq=2),
                 decision(50_000, date(2026, 7, 1), policy="P2", seq=3)]
    r = evaluate(scenario(invoice("I", 10_000, date(2026, 3, 10), 90), policies=policies, decisions=decisions,
                          valued_on=date(2026, 7, 15)))
    i = r.invoice("I")
    assert (i.policy_ref, i.covered_primary, i.covered_top_up, i.reason) == ("P1", D(0), D(0), "missing_fx_rate")
    assert (r.currency, r.missing_pairs, r.status) == ("EUR", {("USD", "EUR")}, "above_cover")


def test_outside_the_policy_period_and_without_any_primary() -> None:
    late = (primary(starts_on=date(2026, 3, 15)),)
    r = evaluate(scenario(invoice("I", 1_000, date(2026, 3, 1)), policies=late))
    assert r.invoice("I").reason == "outside_policy_period"
    none = evaluate(scenario(invoice("I", 1_000, date(2026, 3, 1)), policies=(), decisions=(), default_currency="GBP",
                             rates={("EUR", "GBP"): D("0.8")}))
    assert (none.currency, none.invoice("I").open, none.invoice("I").reason, none.status) == (
        "GBP", D(800), "no_limit", "no_cover")


def test_buckets_from_the_current_due_date() -> None:
    days = {"N": 0, "A": 1, "B": 31, "C": 61, "D": 91}
    r = evaluate(scenario(*[invoice(ref, 1_000, date(2026, 1, 5), 10, due=MAR_20 - timedelta(days=n))
                            for ref, n in days.items()], decisions=[decision(1_000_000)]))
    assert (r.not_due, r.overdue_1_30, r.overdue_31_60, r.overdue_61_90, r.overdue_over_90) == (D(1_000),) * 5


def test_indemnifiable_uses_the_rate_in_force_on_each_delivery() -> None:
    endorsed = (primary(terms(indemnity_rate=D("0.80")), terms(effective_from=MAR_1, indemnity_rate=D("0.95"))),)
    r = evaluate(scenario(invoice("FEB", "10.01", date(2026, 2, 1)), invoice("MAR", "10.01", date(2026, 3, 2)),
                          policies=endorsed))
    assert r.indemnifiable == D("17.52")  # 8.008 + 9.5095 = 17.5175


# ------------------------------------------------------------------------------------------------- properties


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenarios())
def test_evaluate_never_raises_and_the_layers_sum_to_the_outstanding(s: Scenario) -> None:
    r = evaluate(s)
    assert r.covered_primary + r.covered_top_up + r.uncovered == r.outstanding
    assert r.not_due + r.overdue_1_30 + r.overdue_31_60 + r.overdue_61_90 + r.overdue_over_90 == r.outstanding
    assert r.has_errors == bool(r.missing_pairs)
    assert r.status in ("ok", "above_primary", "above_cover", "no_cover", "incomplete")
    assert not (r.has_errors and r.status == "ok")
    for row in r.invoices:
        assert row.covered_primary >= 0 and row.covered_top_up >= 0
        if row.open is not None:
            assert row.covered_primary + row.covered_top_up + row.uncovered == row.open
            assert (row.reason is None) == (row.uncovered == 0)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenarios())
def test_a_payment_never_increases_the_uncovered_amount(s: Scenario) -> None:
    before = evaluate(s)
    for target in s.invoices:
        rest = target.amount - sum((a for _d, a in target.settlements), D(0))
        if rest <= 0:
            continue
        paid = replace(target, settlements=(*target.settlements, (s.valued_on, rest)))
        after = evaluate(replace(s, invoices=tuple(paid if i is target else i for i in s.invoices)))
        if not before.has_errors and not after.has_errors:
            assert after.uncovered <= before.uncovered


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenarios())
def test_the_scenarios_are_valid(s: Scenario) -> None:
    year = (date(2026, 1, 1), date(2026, 12, 31))
    assert year[0] <= s.valued_on <= year[1]
    refs = {p.ref: p for p in s.policies}
    assert any(p.kind != "top_up" for p in s.policies)
    for p in s.policies:
        assert p.versions[0].effective_from == p.starts_on
        dates = [v.effective_from for v in p.versions]
        assert dates == sorted(set(dates)) and dates[-1] <= year[1]
        if p.kind == "top_up":
            assert refs[p.primary_ref].kind != "top_up" and p.mode in ("complement", "substitute")
    seqs = [d.seq for d in s.decisions]
    assert len(seqs) == len(set(seqs))
    for d in s.decisions:
        assert year[0] <= d.effective_from <= year[1] and (d.expires_on is None or d.expires_on <= year[1])
        assert (d.amount == 0) >= (d.status in ("refused", "withdrawn")) and d.amount >= 0
        insurer = [o for o in s.decisions if o.policy_ref == d.policy_ref and o.source == "insurer"]
        if d.source == "discretionary":
            assert refs[d.policy_ref].kind != "top_up"
            assert all(d.effective_from < o.effective_from and d.seq < o.seq for o in insurer)
    for i in s.invoices:
        places = 0 if i.currency == "JPY" else 2
        assert 0 < i.amount <= 500_000 and -i.amount.as_tuple().exponent <= places
        assert year[0] <= i.issue_date <= s.valued_on
        assert 10 <= (i.original_due_date - i.issue_date).days <= 180 and i.due_date >= i.original_due_date
        assert sum((a for _d, a in i.settlements), D(0)) <= i.amount
        assert all(i.issue_date <= day <= s.valued_on and a > 0 for day, a in i.settlements)
        assert i.claim_filed_on is None or i.original_due_date <= i.claim_filed_on <= s.valued_on
