"""The cover engine: pure functions, no database, no HTTP, no clock.

Given one buyer's open invoices, the policies, the buyer's limit decisions, FX
rates and a valuation date, compute what DOMAIN.md rule 5 asks: aging, what the
primary and Top Up layers cover invoice by invoice, what is left uncovered and
why, the indemnifiable amount, utilisation and a status.

Layers walk the eligible open invoices by delivery date (then reference): each
invoice is covered by min(open, max(0, L - C)) where L is the limit in force on
its delivery date and C what the layer already covers of older invoices.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal

ZERO = Decimal(0)
PRIMARY_KINDS = frozenset({"whole_turnover", "excess_of_loss"})
NO_LIMIT_STATUSES = frozenset({"refused", "withdrawn"})
UTILISATION_QUANTUM = Decimal("0.0001")

# Reasons an invoice (or part of it) is uncovered, in the order the checks run.
OUTSIDE_TERRITORY = "outside_territory"
OUTSIDE_POLICY_PERIOD = "outside_policy_period"
TERMS_EXCEED = "terms_exceed_max_credit_period"
AFTER_STOP_OF_COVER = "delivered_after_stop_of_cover"
CLAIM_DEADLINE_PASSED = "claim_deadline_passed"
NO_LIMIT = "no_limit"
ABOVE_LIMIT = "above_limit"
MISSING_FX_RATE = "missing_fx_rate"


def _minor_units(currency: str) -> int:
    from app.core.money import minor_units  # ISO data only: no I/O

    return minor_units(currency)


def quantize(amount: Decimal, currency: str) -> Decimal:
    return amount.quantize(Decimal(1).scaleb(-_minor_units(currency)), rounding=ROUND_HALF_UP)


# --- inputs ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CountryRule:
    max_credit_period_days: int | None = None
    claim_deadline_days: int | None = None


@dataclass(frozen=True)
class Policy:
    ref: str
    kind: str  # whole_turnover | excess_of_loss | top_up
    currency: str
    starts_on: date
    ends_on: date
    indemnity_rate: Decimal
    max_credit_period_days: int = 365
    claim_deadline_days: int = 60
    max_extension_days: int | None = None
    covered_countries: frozenset[str] = frozenset()
    excluded_countries: frozenset[str] = frozenset()
    country_rules: Mapping[str, CountryRule] = field(default_factory=dict)
    # Top Up only
    primary_ref: str | None = None
    mode: str | None = None  # complement | substitute
    ratio: Decimal = Decimal(1)
    per_buyer_cap: Decimal | None = None
    countries: frozenset[str] = frozenset()

    @property
    def is_primary(self) -> bool:
        return self.kind in PRIMARY_KINDS

    def in_territory(self, country: str) -> bool:
        if country in self.excluded_countries:
            return False
        return not self.covered_countries or country in self.covered_countries

    def in_period(self, day: date) -> bool:
        return self.starts_on <= day <= self.ends_on

    def max_credit_period(self, country: str) -> int:
        rule = self.country_rules.get(country)
        if rule is not None and rule.max_credit_period_days is not None:
            return rule.max_credit_period_days
        return self.max_credit_period_days

    def claim_deadline(self, country: str) -> int:
        rule = self.country_rules.get(country)
        if rule is not None and rule.claim_deadline_days is not None:
            return rule.claim_deadline_days
        return self.claim_deadline_days


@dataclass(frozen=True)
class Decision:
    """A cover decision on one buyer under one policy. `seq` orders decisions of the same day."""

    policy_ref: str
    amount: Decimal
    status: str  # granted | partly_granted | reduced | refused | withdrawn
    effective_from: date
    seq: int = 0
    expires_on: date | None = None
    source: str = "insurer"  # insurer | discretionary
    max_credit_period_days: int | None = None

    @property
    def limit(self) -> Decimal:
        return ZERO if self.status in NO_LIMIT_STATUSES else self.amount


@dataclass(frozen=True)
class OpenItem:
    ref: str
    currency: str
    open_balance: Decimal
    issue_date: date  # the delivery date
    due_date: date
    original_due_date: date | None = None
    claim_filed_on: date | None = None  # a claim keeps the cover only if filed by the claim deadline

    @property
    def original_due(self) -> date:
        return self.original_due_date or self.due_date

    @property
    def terms_days(self) -> int:
        return (self.original_due - self.issue_date).days


class Rates:
    """FX rates in force on the valuation date: (base, quote) -> units of quote for one base."""

    def __init__(self, rates: Mapping[tuple[str, str], Decimal] | None = None) -> None:
        self.rates = dict(rates or {})

    def rate(self, source: str, target: str) -> Decimal | None:
        if source == target:
            return Decimal(1)
        direct = self.rates.get((source, target))
        if direct is not None:
            return direct
        inverse = self.rates.get((target, source))
        if inverse is not None and inverse != 0:
            return Decimal(1) / inverse
        for (base, quote), r1 in self.rates.items():  # cross through a common base (EUR for ECB rates)
            if quote == source and r1 != 0:
                r2 = self.rates.get((base, target))
                if r2 is not None:
                    return r2 / r1
        return None

    def convert(self, amount: Decimal, source: str, target: str) -> Decimal | None:
        r = self.rate(source, target)
        return None if r is None else quantize(amount * r, target)


# --- outputs --------------------------------------------------------------------------------------


@dataclass
class InvoiceCover:
    invoice_ref: str
    issue_date: date
    due_date: date
    open_balance: Decimal  # in the result currency
    covered_primary: Decimal = ZERO
    covered_top_up: Decimal = ZERO
    uncovered: Decimal = ZERO
    reason: str | None = None
    claim_deadline: date | None = None
    claim_filed_on: date | None = None
    indemnifiable: Decimal = ZERO
    original_currency: str | None = None
    original_open_balance: Decimal | None = None
    primary_policy_ref: str | None = None


@dataclass
class LimitInForce:
    policy_ref: str
    layer: str  # primary | top_up
    amount: Decimal  # in the result currency
    source: str  # insurer | discretionary | complement | none
    expires_on: date | None = None


@dataclass
class BuyerCover:
    currency: str
    valued_on: date
    outstanding: Decimal = ZERO
    not_due: Decimal = ZERO
    overdue_1_30: Decimal = ZERO
    overdue_31_60: Decimal = ZERO
    overdue_61_90: Decimal = ZERO
    overdue_over_90: Decimal = ZERO
    covered_primary: Decimal = ZERO
    covered_top_up: Decimal = ZERO
    uncovered: Decimal = ZERO
    indemnifiable: Decimal = ZERO
    primary_limit: Decimal = ZERO
    top_up_limit: Decimal = ZERO
    utilisation: Decimal | None = None
    status: str = "ok"
    stop_of_cover_from: date | None = None
    covered_by_policy: dict[str, Decimal] = field(default_factory=dict)  # what each layer covers, by policy ref
    invoices: list[InvoiceCover] = field(default_factory=list)
    limits: list[LimitInForce] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


AMOUNT_FIELDS = (
    "outstanding", "not_due", "overdue_1_30", "overdue_31_60", "overdue_61_90", "overdue_over_90",
    "covered_primary", "covered_top_up", "uncovered", "indemnifiable", "primary_limit", "top_up_limit",
)


# --- limits ---------------------------------------------------------------------------------------


def decision_in_force(decisions: Iterable[Decision], policy_ref: str, day: date) -> Decision | None:
    """The decision governing deliveries on `day`.

    The latest decision effective on or before the day wins; an insurer decision
    (a zero included) cancels any discretionary limit. An expired decision gives no limit.
    """
    effective = [d for d in decisions if d.policy_ref == policy_ref and d.effective_from <= day]
    insurer = [d for d in effective if d.source == "insurer"]
    pool = insurer or effective
    if not pool:
        return None
    chosen = max(pool, key=lambda d: (d.effective_from, d.seq))
    if chosen.expires_on is not None and day > chosen.expires_on:
        return None
    return chosen


def primary_limit(decisions: Sequence[Decision], policy: Policy, day: date) -> tuple[Decimal, Decision | None]:
    d = decision_in_force(decisions, policy.ref, day)
    return (d.limit if d is not None else ZERO), d


def top_up_limit(
    decisions: Sequence[Decision], top_up: Policy, primary: Policy, day: date, currency: str, rates: Rates
) -> tuple[Decimal, str]:
    """The Top Up limit in force on `day`, converted into `currency`, and where it comes from.

    Complement: ratio x the primary limit (capped per buyer) unless an explicit
    Top Up decision exists. Substitute: its own explicit limit, only where the
    primary limit that day is zero (refused, withdrawn, or none).
    """
    if not top_up.in_period(day):
        return ZERO, "none"
    primary_amount, _ = primary_limit(decisions, primary, day)
    primary_in = rates.convert(primary_amount, primary.currency, currency) or ZERO
    cap = None
    if top_up.per_buyer_cap is not None:
        cap = rates.convert(top_up.per_buyer_cap, top_up.currency, currency)
    explicit = decision_in_force(decisions, top_up.ref, day)
    if top_up.mode == "substitute":
        if primary_in > 0 or explicit is None:
            return ZERO, "none"
        amount = rates.convert(explicit.limit, top_up.currency, currency) or ZERO
        source = explicit.source
    elif explicit is not None:
        amount = rates.convert(explicit.limit, top_up.currency, currency) or ZERO
        source = explicit.source
    else:
        amount = quantize(primary_in * top_up.ratio, currency)
        source = "complement"
    if cap is not None:
        amount = min(amount, cap)
    return amount, source


# --- the walk -------------------------------------------------------------------------------------


def _bucket(result: BuyerCover, amount: Decimal, due: date, valued_on: date) -> None:
    days = (valued_on - due).days
    if days <= 0:
        result.not_due += amount
    elif days <= 30:
        result.overdue_1_30 += amount
    elif days <= 60:
        result.overdue_31_60 += amount
    elif days <= 90:
        result.overdue_61_90 += amount
    else:
        result.overdue_over_90 += amount


def _governing_primary(primaries: Sequence[Policy], country: str, valued_on: date) -> Policy | None:
    candidates = [p for p in primaries if p.in_territory(country)]
    if not candidates:
        return None
    current = [p for p in candidates if p.in_period(valued_on)]
    return max(current or candidates, key=lambda p: (p.starts_on, p.ref))


def evaluate(
    *,
    country: str,
    items: Iterable[OpenItem],
    policies: Sequence[Policy],
    decisions: Sequence[Decision],
    valued_on: date,
    rates: Rates | None = None,
    default_currency: str = "EUR",
) -> BuyerCover:
    """Cover of one buyer's open invoices on `valued_on` (DOMAIN.md rules 1 to 5)."""
    rates = rates or Rates()
    primaries = [p for p in policies if p.is_primary]
    top_ups = sorted((p for p in policies if p.kind == "top_up"), key=lambda p: p.ref)
    governing = _governing_primary(primaries, country, valued_on)
    currency = governing.currency if governing is not None else default_currency
    result = BuyerCover(currency=currency, valued_on=valued_on)

    # Convert into the result currency; a missing rate is named, never a silent 1:1.
    converted: list[tuple[OpenItem, InvoiceCover]] = []
    for item in sorted((i for i in items if i.open_balance > 0), key=lambda i: (i.issue_date, i.ref)):
        amount = rates.convert(item.open_balance, item.currency, currency)
        cover = InvoiceCover(
            invoice_ref=item.ref, issue_date=item.issue_date, due_date=item.due_date, open_balance=amount or ZERO,
            original_currency=item.currency if item.currency != currency else None,
            original_open_balance=item.open_balance if item.currency != currency else None,
            claim_filed_on=item.claim_filed_on,
        )
        if amount is None:
            cover.reason = MISSING_FX_RATE
            message = f"missing FX rate {item.currency}/{currency} on or before {valued_on.isoformat()}"
            if message not in result.errors:
                result.errors.append(message)
            result.invoices.append(cover)
            continue
        converted.append((item, cover))
        result.outstanding += amount
        _bucket(result, amount, item.due_date, valued_on)

    # Stop of cover, per policy: the earliest original due date + M days an open invoice has passed.
    stop_from: dict[str, date] = {}
    for p in primaries:
        if p.max_extension_days is None:
            continue
        passed = [
            i.original_due + timedelta(days=p.max_extension_days)
            for i, _ in converted
            if valued_on > i.original_due + timedelta(days=p.max_extension_days)
        ]
        if passed:
            stop_from[p.ref] = min(passed)
    if governing is not None and governing.ref in stop_from:
        result.stop_of_cover_from = stop_from[governing.ref]

    used_primary: dict[str, Decimal] = {}
    used_top_up: dict[str, Decimal] = {}
    indemnifiable = ZERO
    for item, cover in converted:
        in_territory = [p for p in primaries if p.in_territory(country)]
        policy: Policy | None = None
        if not primaries:
            cover.reason = NO_LIMIT
        elif not in_territory:
            cover.reason = OUTSIDE_TERRITORY
        else:
            in_period = [p for p in in_territory if p.in_period(item.issue_date)]
            if not in_period:
                cover.reason = OUTSIDE_POLICY_PERIOD
            else:
                policy = max(in_period, key=lambda p: (p.starts_on, p.ref))
        if policy is not None:
            cover.primary_policy_ref = policy.ref
            cover.claim_deadline = item.original_due + timedelta(days=policy.claim_deadline(country))
            limit, decision = primary_limit(decisions, policy, item.issue_date)
            max_terms = (
                decision.max_credit_period_days
                if decision is not None and decision.max_credit_period_days is not None
                else policy.max_credit_period(country)
            )
            stop = stop_from.get(policy.ref)
            if item.terms_days > max_terms:
                cover.reason = TERMS_EXCEED
            elif stop is not None and item.issue_date > stop:
                cover.reason = AFTER_STOP_OF_COVER
            elif valued_on > cover.claim_deadline and not (
                item.claim_filed_on is not None and item.claim_filed_on <= cover.claim_deadline
            ):
                cover.reason = CLAIM_DEADLINE_PASSED
            else:
                limit_in = rates.convert(limit, policy.currency, currency)
                if limit_in is None:
                    limit_in = ZERO
                    message = f"missing FX rate {policy.currency}/{currency} on or before {valued_on.isoformat()}"
                    if message not in result.errors:
                        result.errors.append(message)
                used = used_primary.get(policy.ref, ZERO)
                cover.covered_primary = min(cover.open_balance, max(ZERO, limit_in - used))
                used_primary[policy.ref] = used + cover.covered_primary
                cover.indemnifiable += cover.covered_primary * policy.indemnity_rate
                any_limit = limit_in > 0
                left = cover.open_balance - cover.covered_primary
                for top_up in top_ups:
                    if top_up.primary_ref != policy.ref:
                        continue
                    scope = top_up.countries or None
                    if scope is not None and country not in scope:
                        continue
                    t_limit, _ = top_up_limit(decisions, top_up, policy, item.issue_date, currency, rates)
                    any_limit = any_limit or t_limit > 0
                    if left <= 0:
                        continue
                    used_t = used_top_up.get(top_up.ref, ZERO)
                    take = min(left, max(ZERO, t_limit - used_t))
                    used_top_up[top_up.ref] = used_t + take
                    cover.covered_top_up += take
                    cover.indemnifiable += take * top_up.indemnity_rate
                    left -= take
                if left > 0:
                    cover.reason = ABOVE_LIMIT if any_limit else NO_LIMIT
        cover.uncovered = cover.open_balance - cover.covered_primary - cover.covered_top_up
        if cover.uncovered == 0:
            cover.reason = None
        indemnifiable += cover.indemnifiable
        cover.indemnifiable = quantize(cover.indemnifiable, currency)
        result.covered_primary += cover.covered_primary
        result.covered_top_up += cover.covered_top_up
        result.uncovered += cover.uncovered
        result.invoices.append(cover)

    result.invoices.sort(key=lambda c: (c.issue_date, c.invoice_ref))
    result.covered_by_policy = {**used_primary, **used_top_up}
    result.indemnifiable = quantize(indemnifiable, currency)

    # Limits in force on the valuation date, for utilisation and for the dashboard.
    if governing is not None:
        amount, decision = primary_limit(decisions, governing, valued_on)
        amount_in = rates.convert(amount, governing.currency, currency) or ZERO
        result.primary_limit = amount_in
        result.limits.append(LimitInForce(governing.ref, "primary", amount_in,
                                          decision.source if decision is not None else "none",
                                          decision.expires_on if decision is not None else None))
        for top_up in top_ups:
            if top_up.primary_ref != governing.ref or (top_up.countries and country not in top_up.countries):
                continue
            t_amount, source = top_up_limit(decisions, top_up, governing, valued_on, currency, rates)
            explicit = decision_in_force(decisions, top_up.ref, valued_on) if source != "complement" else None
            result.top_up_limit += t_amount
            result.limits.append(LimitInForce(top_up.ref, "top_up", t_amount, source,
                                              explicit.expires_on if explicit is not None else None))
    total_limit = result.primary_limit + result.top_up_limit
    if total_limit > 0:
        result.utilisation = (result.outstanding / total_limit).quantize(UTILISATION_QUANTUM, ROUND_HALF_UP)
    result.status = _status(result)
    return result


def _status(r: BuyerCover) -> str:
    if r.outstanding == 0:
        return "ok"
    if r.primary_limit == 0 and r.top_up_limit == 0 and r.covered_primary == 0 and r.covered_top_up == 0:
        return "no_cover"
    if r.uncovered > 0:
        return "above_cover"
    if r.covered_top_up > 0:
        return "above_primary"
    return "ok"
