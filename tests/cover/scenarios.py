"""Hypothesis strategy for random but valid cover scenarios, all within 2026, for the oracle (tests/oracle.py).

`scenarios()` takes keyword parameters to tune the mix; the defaults follow the oracle brief: EUR, USD, GBP, JPY
with each EUR-based rate present about 80% of the time; buyers in FR, DE, IT, ES, US; one or two primaries and up
to two Top Ups, each with up to two endorsements; decisions with grants, reductions, refusals, withdrawals,
expiries and discretionary limits (a discretionary one always effective, and recorded, before any insurer one of
the same policy); 1 to 12 invoices on 10-180-day terms, some postponed, partly or fully settled, some claimed.
Every date is in 2026 except due dates (and claim deadlines) of late deliveries; deliveries, settlements and claims
are on or before the valuation date, decisions (up to 30 days after it) and endorsements may lie after it.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import date, timedelta
from decimal import Decimal
from functools import cache

from hypothesis import strategies as st

from tests.oracle import DecisionSpec, InvoiceSpec, PolicySpec, Scenario, Terms

YEAR_START = date(2026, 1, 1)
YEAR_END = date(2026, 12, 31)
CURRENCIES = ("EUR", "USD", "GBP", "JPY")
COUNTRIES = ("FR", "DE", "IT", "ES", "US")
ZERO_DECIMALS = frozenset({"JPY", "KRW"})
# A plausible EUR-based rate range per currency, in units of 1/10,000.
RATE_RANGES = {"USD": (9_000, 13_000), "GBP": (7_500, 9_500), "JPY": (1_400_000, 1_800_000)}
ROUND_AMOUNTS = (1_000, 5_000, 10_000, 20_000, 25_000, 50_000, 100_000, 150_000, 200_000, 500_000)


# Strategies built once per distinct argument: building one per draw costs more than the draw itself.
@cache
def ints(low: int, high: int) -> st.SearchStrategy[int]:
    return st.integers(low, high)


def pick(options) -> st.SearchStrategy:
    return _pick(tuple(options))


@cache
def _pick(options: tuple) -> st.SearchStrategy:
    return st.sampled_from(options)


@cache
def maybe(options: tuple) -> st.SearchStrategy:
    return st.none() | st.sampled_from(options)


@cache
def days_between(lo: date, hi: date) -> st.SearchStrategy[date]:
    return ints(lo.toordinal(), max(lo, hi).toordinal()).map(date.fromordinal)


def chance(draw, percent: int) -> bool:
    """True about `percent`% of the time; False for hypothesis's simplest draw (0), so shrinking goes to False."""
    return draw(ints(0, 99)) >= 100 - percent


def money(draw, currency: str, low: int = 1, high: int = 500_000) -> Decimal:
    """A positive amount with at most 2 decimals (none for JPY), up to 500,000: often round, sometimes not."""
    if chance(draw, 40):
        units = draw(pick([a for a in ROUND_AMOUNTS if low <= a <= high] or [low]))
    else:
        units = draw(ints(low, high))
    if currency in ZERO_DECIMALS or units == high or chance(draw, 30):
        return Decimal(units)
    return Decimal(f"{units}.{draw(ints(0, 99)):02d}")


def split(draw, amount: Decimal, currency: str) -> Decimal:
    """A part of `amount` strictly between 0 and it, in the currency's minor units (amount must allow one)."""
    step = Decimal(1) if currency in ZERO_DECIMALS else Decimal("0.01")
    steps = int(amount / step)
    return draw(ints(1, steps - 1)) * step


def country_set(draw, countries: tuple[str, ...], most: int) -> frozenset[str]:
    return frozenset(draw(st.lists(pick(countries), min_size=1, max_size=most, unique=True)))


def primary_terms(draw, effective_from: date, ends_on: date, countries: tuple[str, ...], simple: bool) -> Terms:
    if simple:
        return Terms(effective_from, YEAR_END, Decimal(draw(pick(("0.80", "0.90", "0.95")))), 180, 180,
                     None, frozenset(), frozenset(), {})
    covered = country_set(draw, countries, 3) if chance(draw, 20) else frozenset()
    excluded = country_set(draw, countries, 1) if chance(draw, 15) else frozenset()
    overrides = {}
    if chance(draw, 20):
        overrides[draw(pick(countries))] = (
            draw(maybe((45, 60, 90, 120))), draw(maybe((30, 45, 90))))
    return Terms(
        effective_from=effective_from,
        ends_on=ends_on,
        indemnity_rate=Decimal(draw(pick(("0.70", "0.80", "0.85", "0.90", "0.95")))),
        max_credit_period_days=draw(pick((60, 90, 120, 150, 180))),
        claim_deadline_days=draw(pick((30, 60, 90, 120))),
        max_extension_days=draw(maybe((15, 30, 60, 90))),
        covered_countries=covered,
        excluded_countries=excluded,
        country_overrides=overrides,
    )


def top_up_terms(draw, effective_from: date, ends_on: date, currency: str, countries: tuple[str, ...]) -> Terms:
    return Terms(
        effective_from=effective_from,
        ends_on=ends_on,
        indemnity_rate=Decimal(draw(pick(("0.70", "0.80", "0.90", "0.95")))),
        max_credit_period_days=180,
        claim_deadline_days=60,
        max_extension_days=None,
        covered_countries=frozenset(),
        excluded_countries=frozenset(),
        country_overrides={},
        ratio=Decimal(draw(pick(("0.5", "1", "1", "1", "1.5", "2")))),
        per_buyer_cap=money(draw, currency, 1_000) if chance(draw, 35) else None,
        scope=country_set(draw, countries, 3) if chance(draw, 30) else frozenset(),
        follows_discretionary=draw(st.booleans()),
    )


def endorse(draw, previous: Terms, effective_from: date, fresh: Terms, top_up: bool) -> Terms:
    """`previous` with a few of its terms replaced by `fresh`'s, from `effective_from`."""
    names = (["ratio", "per_buyer_cap", "scope", "follows_discretionary", "indemnity_rate", "ends_on"] if top_up else
             ["covered_countries", "excluded_countries", "max_credit_period_days", "claim_deadline_days",
              "max_extension_days", "indemnity_rate", "country_overrides", "ends_on"])
    changed = draw(st.lists(pick(names), min_size=1, max_size=3, unique=True))
    return replace(previous, effective_from=effective_from, **{name: getattr(fresh, name) for name in changed})


def policy_versions(draw, starts_on: date, top_up: bool, currency: str, countries: tuple[str, ...],
                    max_endorsements: int, simple: bool = False) -> tuple[Terms, ...]:
    def fresh_terms(effective_from: date) -> Terms:
        ends_on = YEAR_END if chance(draw, 75) else draw(days_between(effective_from + timedelta(days=30), YEAR_END))
        if top_up:
            return top_up_terms(draw, effective_from, ends_on, currency, countries)
        return primary_terms(draw, effective_from, ends_on, countries, simple)

    versions = [fresh_terms(starts_on)]
    later = days_between(starts_on + timedelta(days=1), YEAR_END)
    dates = sorted(set(draw(st.lists(later, max_size=max_endorsements))))
    for effective_from in dates:
        versions.append(endorse(draw, versions[-1], effective_from, fresh_terms(effective_from), top_up))
    return tuple(versions)


def expiry(draw, effective_from: date, shortest: int, longest: int) -> date:
    return min(YEAR_END, effective_from + timedelta(days=draw(ints(shortest, longest))))


def policy_decisions(draw, policy: PolicySpec, valued_on: date, max_decisions: int, primary: bool,
                     next_seq: int) -> list[DecisionSpec]:
    count = draw(ints(0, max_decisions)) if not primary or chance(draw, 10) else draw(
        ints(min(1, max_decisions), max_decisions))
    dates = sorted(draw(st.lists(days_between(YEAR_START, min(YEAR_END, valued_on + timedelta(days=30))),
                                 min_size=count, max_size=count)))
    if dates and chance(draw, 60):
        dates[0] = min(dates[0], policy.starts_on)  # most limits are in force from the policy's start
    discretionary = draw(ints(0, min(2, count))) if primary and chance(draw, 35) else 0
    insurer_dates = dates[discretionary:]
    first_insurer = insurer_dates[0] if insurer_dates else None
    out = []
    for effective_from in dates[:discretionary]:
        if first_insurer is not None and effective_from >= first_insurer:
            continue
        out.append(DecisionSpec(
            policy.ref, "granted", money(draw, policy.currency, 1_000, 100_000), effective_from, next_seq + len(out),
            expires_on=expiry(draw, effective_from, 30, 300) if chance(draw, 15) else None,
            source="discretionary"))
    # Insurer decisions are recorded after the discretionary ones, in any order among themselves.
    seqs = draw(st.permutations(range(len(insurer_dates))))
    base = next_seq + len(out)
    for effective_from, seq in zip(insurer_dates, seqs, strict=True):
        status = draw(pick(("granted", "granted", "granted", "partly_granted", "reduced", "refused", "withdrawn")))
        if status in ("refused", "withdrawn") or (status == "reduced" and chance(draw, 15)):
            amount = Decimal(0)
        else:
            amount = money(draw, policy.currency, 1_000)
        out.append(DecisionSpec(
            policy.ref, status, amount, effective_from, base + seq,
            expires_on=expiry(draw, effective_from, 0, 200) if chance(draw, 20) else None,
            max_credit_period_days=draw(pick((30, 45, 60, 90, 120))) if primary and chance(draw, 15)
            else None))
    return out


def invoice(draw, ref: str, currency: str, valued_on: date, simple: bool) -> InvoiceSpec:
    recent = simple or chance(draw, 75)
    window = 60 if simple else 120
    issue = draw(days_between(max(YEAR_START, valued_on - timedelta(days=window)) if recent else YEAR_START, valued_on))
    usual_terms = pick((30, 45, 60, 60, 90, 120))
    original_due = issue + timedelta(days=draw(usual_terms if chance(draw, 70) else ints(10, 180)))
    due = original_due + timedelta(days=draw(ints(1, 60))) if chance(draw, 20) else original_due
    amount = money(draw, currency, 1, 60_000) if chance(draw, 80) else money(draw, currency)

    def settlement_day() -> date:
        day = original_due + timedelta(days=draw(ints(-30, 60)))
        return min(max(day, issue), valued_on)

    settlements: tuple[tuple[date, Decimal], ...] = ()
    kind = draw(pick(("none", "none", "partial", "full", "full")))
    smallest = Decimal(1) if currency in ZERO_DECIMALS else Decimal("0.01")
    if kind == "partial" and amount > smallest:
        settlements = ((settlement_day(), split(draw, amount, currency)),)
    elif kind == "full":
        if amount > smallest and chance(draw, 40):
            first = split(draw, amount, currency)
            settlements = tuple(sorted([(settlement_day(), first), (settlement_day(), amount - first)]))
        else:
            settlements = ((settlement_day(), amount),)
    claim = None
    settled = sum((a for _d, a in settlements), Decimal(0)) >= amount
    if not settled and original_due <= valued_on and chance(draw, 25):
        claim = draw(days_between(original_due, valued_on))
    return InvoiceSpec(ref, currency, amount, issue, due, original_due, settlements, claim)


@st.composite
def scenarios(draw, *, currencies: tuple[str, ...] = CURRENCIES, countries: tuple[str, ...] = COUNTRIES,
              rate_presence: int = 80, direct_rate_chance: int = 15, max_primaries: int = 2, max_top_ups: int = 2,
              max_endorsements: int = 2, max_decisions: int = 4, max_invoices: int = 12,
              earliest_valuation: date = date(2026, 2, 1), simple_share: int = 25) -> Scenario:
    """A valid scenario. The *_share, *_presence and *_chance parameters are percentages; the max_* bound counts.

    A "simple" scenario (simple_share% of them) has one worldwide primary from 1 January with lenient terms and no
    endorsement, a complement Top Up, and invoices in the primary's currency delivered in the last 60 days:
    without them almost every scenario has some ineligible invoice, and ok and above_primary would be rare.
    """
    simple = chance(draw, simple_share)
    valued_on = draw(days_between(earliest_valuation, YEAR_END))
    country = draw(pick(countries))
    default_currency = draw(pick(currencies))

    rates: dict[tuple[str, str], Decimal] = {}
    others = [c for c in currencies if c != "EUR"]
    for c in others:
        if chance(draw, rate_presence):
            low, high = RATE_RANGES.get(c, (5_000, 20_000))
            rates[("EUR", c)] = Decimal(draw(ints(low, high))) / 10_000
    if len(others) >= 2 and chance(draw, direct_rate_chance):
        a, b = draw(st.lists(pick(others), min_size=2, max_size=2, unique=True))
        rates[(a, b)] = Decimal(draw(ints(1_000, 2_000_000))) / 10_000

    def policy_currency() -> str:
        return "EUR" if "EUR" in currencies and chance(draw, 50) else draw(pick(currencies))

    policies: list[PolicySpec] = []
    for n in range(1 if simple else draw(ints(1, max_primaries))):
        mid_year = not simple and ((n > 0 and chance(draw, 60)) or chance(draw, 10))
        starts_on = draw(days_between(date(2026, 2, 1), date(2026, 10, 1))) if mid_year else YEAR_START
        currency = policy_currency()
        policies.append(PolicySpec(
            f"P{n + 1}", draw(pick(("whole_turnover", "excess_of_loss"))), currency, starts_on,
            policy_versions(draw, starts_on, False, currency, countries, 0 if simple else max_endorsements, simple)))
    primary_refs = [p.ref for p in policies]
    for n in range(draw(ints(min(1, max_top_ups) if simple else 0, max_top_ups))):
        starts_on = YEAR_START if chance(draw, 70) else draw(days_between(YEAR_START, date(2026, 10, 1)))
        currency = policy_currency()
        policies.append(PolicySpec(
            f"U{n + 1}", "top_up", currency, starts_on,
            policy_versions(draw, starts_on, True, currency, countries, max_endorsements),
            primary_ref=draw(pick(primary_refs)),
            mode="complement" if simple and n == 0 else draw(pick(("complement", "complement", "substitute")))))

    decisions: list[DecisionSpec] = []
    for policy in policies:
        decisions.extend(policy_decisions(draw, policy, valued_on, max_decisions if policy.kind != "top_up"
                                          else min(2, max_decisions), policy.kind != "top_up", len(decisions) + 1))

    invoice_currencies = [policies[0].currency, default_currency]
    invoices = []
    for n in range(draw(ints(1, max_invoices))):
        if simple:
            currency = policies[0].currency
        elif chance(draw, 70):
            currency = draw(pick(invoice_currencies))
        else:
            currency = draw(pick(currencies))
        invoices.append(invoice(draw, f"I{n + 1:02d}", currency, valued_on, simple))

    return Scenario(valued_on, country, default_currency, tuple(policies), tuple(decisions), tuple(invoices), rates)
