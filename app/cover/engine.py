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
from functools import cached_property, lru_cache

ZERO = Decimal(0)
PRIMARY_KINDS = frozenset({"whole_turnover", "excess_of_loss"})
NO_LIMIT_STATUSES = frozenset({"refused", "withdrawn"})
UTILISATION_QUANTUM = Decimal("0.0001")

# Reasons an invoice (or part of it) is uncovered, in the order the checks run.
OUTSIDE_TERRITORY = "outside_territory"
OUTSIDE_POLICY_PERIOD = "outside_policy_period"
TERMS_EXCEED = "terms_exceed_max_credit_period"
DURING_STOP_OF_COVER = "delivered_during_stop_of_cover"
CLAIM_DEADLINE_PASSED = "claim_deadline_passed"
NO_LIMIT = "no_limit"
ABOVE_LIMIT = "above_limit"
MISSING_FX_RATE = "missing_fx_rate"


@lru_cache(maxsize=512)
def _quantum(currency: str) -> Decimal:
    from app.core.money import minor_units  # ISO data only: no I/O

    return Decimal(1).scaleb(-minor_units(currency))


def quantize(amount: Decimal, currency: str) -> Decimal:
    return amount.quantize(_quantum(currency), rounding=ROUND_HALF_UP)


# --- inputs ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CountryRule:
    max_credit_period_days: int | None = None
    claim_deadline_days: int | None = None


@dataclass(frozen=True)
class Terms:
    """A policy's terms from `effective_from` on (DOMAIN.md rule 8: endorsements are versions, never retroactive)."""

    effective_from: date
    ends_on: date
    indemnity_rate: Decimal
    max_credit_period_days: int = 365
    claim_deadline_days: int = 60
    max_extension_days: int | None = None
    covered_countries: frozenset[str] = frozenset()
    excluded_countries: frozenset[str] = frozenset()
    country_rules: Mapping[str, CountryRule] = field(default_factory=dict)
    # Top Up only
    ratio: Decimal = Decimal(1)
    per_buyer_cap: Decimal | None = None
    countries: frozenset[str] = frozenset()
    follows_discretionary: bool = False

    def in_territory(self, country: str) -> bool:
        if country in self.excluded_countries:
            return False
        return not self.covered_countries or country in self.covered_countries

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
class Policy:
    """A policy: identity, its original terms (the flat fields, in force from `starts_on`) and its endorsements.

    Every question about terms takes the day it is asked for: an invoice is judged by the terms in force on its
    delivery date.
    """

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
    follows_discretionary: bool = False
    endorsements: tuple[Terms, ...] = ()  # later versions of the terms, any order

    @property
    def is_primary(self) -> bool:
        return self.kind in PRIMARY_KINDS

    @cached_property
    def original_terms(self) -> Terms:
        return Terms(
            effective_from=self.starts_on, ends_on=self.ends_on, indemnity_rate=self.indemnity_rate,
            max_credit_period_days=self.max_credit_period_days, claim_deadline_days=self.claim_deadline_days,
            max_extension_days=self.max_extension_days, covered_countries=self.covered_countries,
            excluded_countries=self.excluded_countries, country_rules=self.country_rules, ratio=self.ratio,
            per_buyer_cap=self.per_buyer_cap, countries=self.countries,
            follows_discretionary=self.follows_discretionary,
        )

    def terms(self, day: date) -> Terms:
        """The terms in force on `day` (before the first version: the original terms)."""
        if not self.endorsements:
            return self.original_terms
        cache: dict[date, Terms] = self.__dict__.setdefault("_terms_on", {})  # a walk asks the same days again
        found = cache.get(day)
        if found is None:
            best: Terms | None = None
            for t in self.endorsements:
                if t.effective_from <= day and (best is None or t.effective_from > best.effective_from):
                    best = t
            found = cache[day] = best if best is not None else self.original_terms
        return found

    def in_territory(self, country: str, day: date) -> bool:
        return self.terms(day).in_territory(country)

    def in_period(self, day: date) -> bool:
        return self.starts_on <= day <= self.terms(day).ends_on

    def applies_to_country(self, country: str, day: date) -> bool:
        """A Top Up's scope on `day` (empty: wherever its primary covers)."""
        scope = self.terms(day).countries
        return not scope or country in scope


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

    @property
    def is_refusal(self) -> bool:
        """The insurer refused, withdrew or reduced the limit to zero (what a substitute Top Up needs: rule 11)."""
        return self.source == "insurer" and (self.status in NO_LIMIT_STATUSES or self.amount == 0)


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


@dataclass(frozen=True)
class HistoryItem:
    """An invoice of the buyer, open or settled: what stop-of-cover periods are derived from (rule 7)."""

    ref: str
    issue_date: date
    original_due_date: date
    paid_in_full_on: date | None  # None while any of it is unpaid


@dataclass(frozen=True)
class StopPeriod:
    """Cover stopped under `policy_ref` for deliveries strictly after `starts_on` and before `ends_on`."""

    policy_ref: str
    starts_on: date
    ends_on: date | None
    invoice_refs: tuple[str, ...]

    def covers(self, day: date) -> bool:
        return self.starts_on < day and (self.ends_on is None or day < self.ends_on)


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
        # Cross through a common base: the euro first (ECB reference rates), then any other, in a fixed order.
        bases = sorted({b for b, _ in self.rates}, key=lambda b: (b != "EUR", b))
        for base in bases:
            via_source, via_target = self.rates.get((base, source)), self.rates.get((base, target))
            if via_source and via_target is not None:
                return via_target / via_source
        return None

    def convert(self, amount: Decimal, source: str, target: str) -> Decimal | None:
        r = self.rate(source, target)
        return None if r is None else quantize(amount * r, target)


def missing_rate_message(source: str, target: str, valued_on: date) -> str:
    return f"missing FX rate {source}/{target} on or before {valued_on.isoformat()}"


# --- outputs --------------------------------------------------------------------------------------


@dataclass
class InvoiceCover:
    invoice_ref: str
    issue_date: date
    due_date: date
    open_balance: Decimal  # in the result currency (0 when it cannot be converted: see `reason`)
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
    # The walk's state after this invoice: what each layer has covered of it and of every invoice before it
    # (by policy ref), and the unrounded indemnifiable amount of them all. A later walk resumes from it (`Resume`).
    used_after: dict[str, Decimal] | None = None
    indemnifiable_after: Decimal = ZERO


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
    stop_periods: list[StopPeriod] = field(default_factory=list)  # of the governing primary and the others
    covered_by_policy: dict[str, Decimal] = field(default_factory=dict)  # what each layer covers, by policy ref
    invoices: list[InvoiceCover] = field(default_factory=list)
    limits: list[LimitInForce] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    missing_rates: set[tuple[str, str]] = field(default_factory=set)  # (from, to) pairs that were needed

    @property
    def stop_of_cover_from(self) -> date | None:
        """The start of the stop of cover in force now (an open-ended period), if any."""
        current = [p.starts_on for p in self.stop_periods if p.ends_on is None]
        return min(current) if current else None

    def missing(self, source: str, target: str) -> None:
        self.missing_rates.add((source, target))
        message = missing_rate_message(source, target, self.valued_on)
        if message not in self.errors:
            self.errors.append(message)


AMOUNT_FIELDS = (
    "outstanding", "not_due", "overdue_1_30", "overdue_31_60", "overdue_61_90", "overdue_over_90",
    "covered_primary", "covered_top_up", "uncovered", "indemnifiable", "primary_limit", "top_up_limit",
)


@dataclass(frozen=True)
class Resume:
    """Where a walk picks up, instead of at a buyer's first invoice: the state after the last invoice before the
    first one given (`InvoiceCover.used_after`, `indemnifiable_after`) and the amounts of every invoice before it
    (the AMOUNT_FIELDS of rule 5 but the limits and indemnifiable, in the result currency).

    The walk is monotone in delivery order: an invoice's cover depends only on the invoices delivered before it, so
    resuming gives exactly what a walk from the first invoice gives, as long as the earlier invoices, the inputs and
    the valuation date are unchanged and no conversion is missing (a layer knocked out by a missing rate covers
    nothing for the whole buyer: such a buyer is walked whole)."""

    used: Mapping[str, Decimal] = field(default_factory=dict)
    indemnifiable: Decimal = ZERO
    amounts: Mapping[str, Decimal] = field(default_factory=dict)


PRIOR_FIELDS = ("outstanding", "not_due", "overdue_1_30", "overdue_31_60", "overdue_61_90", "overdue_over_90",
                "covered_primary", "covered_top_up", "uncovered")


class MissingRate(Exception):
    """A conversion a figure needs has no rate: the figure is unknown (rule 9)."""

    def __init__(self, source: str, target: str) -> None:
        super().__init__(f"{source}/{target}")
        self.source, self.target = source, target


def _convert(rates: Rates, amount: Decimal, source: str, target: str) -> Decimal:
    converted = rates.convert(amount, source, target)
    if converted is None:
        raise MissingRate(source, target)
    return converted


# --- limits ---------------------------------------------------------------------------------------


def decision_in_force(decisions: Iterable[Decision], policy_ref: str, day: date) -> Decision | None:
    """The decision governing deliveries on `day`.

    The latest decision effective on or before the day wins; an insurer decision
    (a zero included) cancels any discretionary limit from its effective date.
    An expired decision gives no limit.
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
    """The Top Up limit in force on `day`, in `currency`, and where it comes from (rule 4).

    Complement: ratio x the primary's insurer limit (or its discretionary one, if the Top Up follows those),
    unless an explicit Top Up decision is in force. Substitute: its own explicit limit, only where the primary
    insurer refused, withdrew or reduced to zero the limit in force that day (rule 11). The per-buyer cap bounds
    both. Raises MissingRate when a conversion it needs has no rate.
    """
    if not top_up.in_period(day):
        return ZERO, "none"
    terms = top_up.terms(day)
    primary_amount, primary_decision = primary_limit(decisions, primary, day)
    explicit = decision_in_force(decisions, top_up.ref, day)
    if top_up.mode == "substitute":
        if primary_decision is None or not primary_decision.is_refusal:
            return ZERO, "none"
        if explicit is None:
            amount, source = ZERO, "none"
        else:
            amount, source = _convert(rates, explicit.limit, top_up.currency, currency), explicit.source
    elif explicit is not None:
        amount, source = _convert(rates, explicit.limit, top_up.currency, currency), explicit.source
    else:
        follows = primary_decision is not None and (
            primary_decision.source == "insurer" or terms.follows_discretionary)
        base = _convert(rates, primary_amount, primary.currency, currency) if follows else ZERO
        amount, source = quantize(base * terms.ratio, currency), "complement"
    if terms.per_buyer_cap is not None:
        amount = min(amount, _convert(rates, terms.per_buyer_cap, top_up.currency, currency))
    return amount, source


# --- stop of cover --------------------------------------------------------------------------------


def governing_primary(primaries: Sequence[Policy], country: str, day: date) -> tuple[Policy | None, str | None]:
    """The primary policy that governs a delivery on `day`, or the reason none does."""
    if not primaries:
        return None, NO_LIMIT
    in_territory = [p for p in primaries if p.in_territory(country, day)]
    if not in_territory:
        return None, OUTSIDE_TERRITORY
    in_period = [p for p in in_territory if p.in_period(day)]
    if not in_period:
        return None, OUTSIDE_POLICY_PERIOD
    return max(in_period, key=lambda p: (p.starts_on, p.ref)), None


def stop_periods(
    *, country: str, history: Iterable[HistoryItem], policies: Sequence[Policy], valued_on: date
) -> list[StopPeriod]:
    """Stop-of-cover periods per primary policy, from the buyer's invoice history (rule 7).

    An invoice still unpaid on its original due date + M (the maximum extension of the terms it was delivered
    under) stops cover for deliveries after that day, until the day it is paid or credited in full. Overlapping
    stops merge; the result is the same whatever today's open invoices are, because paid ones keep their dates.
    """
    primaries = [p for p in policies if p.is_primary]
    spans: dict[str, list[tuple[date, date | None, str]]] = {}
    for item in history:
        policy, _ = governing_primary(primaries, country, item.issue_date)
        if policy is None:
            continue
        extension = policy.terms(item.issue_date).max_extension_days
        if extension is None:
            continue
        start = item.original_due_date + timedelta(days=extension)
        if start >= valued_on or (item.paid_in_full_on is not None and item.paid_in_full_on <= start):
            continue
        spans.setdefault(policy.ref, []).append((start, item.paid_in_full_on, item.ref))
    out: list[StopPeriod] = []
    for ref, items in sorted(spans.items()):
        items.sort(key=lambda s: (s[0], s[1] is None, s[1] or s[0], s[2]))
        start, end, refs = items[0][0], items[0][1], [items[0][2]]
        for s, e, r in items[1:]:
            if end is None or s < end:  # overlaps the current period: extend it
                end = None if end is None or e is None else max(end, e)
                refs.append(r)
            else:
                out.append(StopPeriod(ref, start, end, tuple(sorted(refs))))
                start, end, refs = s, e, [r]
        out.append(StopPeriod(ref, start, end, tuple(sorted(refs))))
    return out


# --- the walk -------------------------------------------------------------------------------------


def bucket(due: date, valued_on: date) -> str:
    """DOMAIN.md rule 5's aging bucket of an amount due on `due`: not yet due, then overdue 1-30, 31-60, 61-90,
    over 90 days (the name of the BuyerCover field it adds to)."""
    days = (valued_on - due).days
    if days <= 0:
        return "not_due"
    if days <= 30:
        return "overdue_1_30"
    if days <= 60:
        return "overdue_31_60"
    if days <= 90:
        return "overdue_61_90"
    return "overdue_over_90"


def _bucket(result: BuyerCover, amount: Decimal, due: date, valued_on: date) -> None:
    field_name = bucket(due, valued_on)
    setattr(result, field_name, getattr(result, field_name) + amount)


def _buyer_primary(primaries: Sequence[Policy], country: str, valued_on: date) -> Policy | None:
    candidates = [p for p in primaries if p.in_territory(country, valued_on)]
    if not candidates:
        return None
    current = [p for p in candidates if p.in_period(valued_on)]
    return max(current or candidates, key=lambda p: (p.starts_on, p.ref))


# Of a delivery date: the governing primary (or why none), its claim deadline days and maximum credit period for
# the buyer's country (a decision's own maximum first), and whether a stop of cover covers the day.
_Day = tuple[Policy | None, str | None, int, int, bool]


def _day(primaries: Sequence[Policy], decisions: Sequence[Decision], stops: Mapping[str, list[StopPeriod]],
         country: str, day: date) -> _Day:
    policy, reason = governing_primary(primaries, country, day)
    if policy is None:
        return None, reason, 0, 0, False
    terms = policy.terms(day)
    _, decision = primary_limit(decisions, policy, day)
    max_terms = (
        decision.max_credit_period_days
        if decision is not None and decision.max_credit_period_days is not None
        else terms.max_credit_period(country)
    )
    return (policy, None, terms.claim_deadline(country), max_terms,
            any(s.covers(day) for s in stops.get(policy.ref, ())))


@dataclass
class _Eligible:
    item: OpenItem
    cover: InvoiceCover
    policy: Policy
    limit: Decimal = ZERO  # the primary limit in force on the delivery date, in the result currency
    top_ups: list[tuple[Policy, Decimal]] = field(default_factory=list)  # applying Top Ups and their limits


def evaluate(
    *,
    country: str,
    items: Iterable[OpenItem],
    policies: Sequence[Policy],
    decisions: Sequence[Decision],
    valued_on: date,
    rates: Rates | None = None,
    default_currency: str = "EUR",
    stops: Sequence[StopPeriod] = (),
    resume: Resume | None = None,
) -> BuyerCover:
    """Cover of one buyer's open invoices on `valued_on` (DOMAIN.md rules 1 to 5, 7 to 11).

    `stops` are the buyer's stop-of-cover periods (see `stop_periods`): history, not derived from `items`.
    With `resume`, `items` are the invoices from some delivery date on and the walk starts from that state; the
    result's totals include the earlier invoices, its `invoices` only those given.
    """
    rates = rates or Rates()
    primaries = [p for p in policies if p.is_primary]
    top_ups = sorted((p for p in policies if p.kind == "top_up"), key=lambda p: p.ref)
    governing = _buyer_primary(primaries, country, valued_on)
    currency = governing.currency if governing is not None else default_currency
    result = BuyerCover(currency=currency, valued_on=valued_on, stop_periods=list(stops))
    resume = resume or Resume()
    for name, prior in resume.amounts.items():
        setattr(result, name, prior)
    stops_by_policy: dict[str, list[StopPeriod]] = {}
    for stop in stops:
        stops_by_policy.setdefault(stop.policy_ref, []).append(stop)

    # 1. Convert and check eligibility, invoice by invoice (rule 1).
    eligible: list[_Eligible] = []
    days: dict[date, _Day] = {}  # what rule 1 asks of the delivery date alone, worked out once per day
    unknown: set[str] = set()  # invoices whose amount cannot be converted: counted nowhere
    for item in sorted((i for i in items if i.open_balance > 0), key=lambda i: (i.issue_date, i.ref)):
        foreign = item.currency != currency
        cover = InvoiceCover(
            invoice_ref=item.ref, issue_date=item.issue_date, due_date=item.due_date, open_balance=ZERO,
            original_currency=item.currency if foreign else None,
            original_open_balance=item.open_balance if foreign else None, claim_filed_on=item.claim_filed_on,
        )
        result.invoices.append(cover)
        amount = rates.convert(item.open_balance, item.currency, currency)
        if amount is None:
            cover.reason = MISSING_FX_RATE
            result.missing(item.currency, currency)
            unknown.add(item.ref)
            continue
        cover.open_balance = amount
        result.outstanding += amount
        _bucket(result, amount, item.due_date, valued_on)
        checks = days.get(item.issue_date)
        if checks is None:
            checks = days[item.issue_date] = _day(primaries, decisions, stops_by_policy, country, item.issue_date)
        policy, reason, claim_days, max_terms, stopped = checks
        if policy is None:
            cover.reason = reason
            continue
        cover.primary_policy_ref = policy.ref
        cover.claim_deadline = item.original_due + timedelta(days=claim_days)
        if item.terms_days > max_terms:
            cover.reason = TERMS_EXCEED
        elif stopped:
            cover.reason = DURING_STOP_OF_COVER
        elif valued_on > cover.claim_deadline and not (
            item.claim_filed_on is not None and item.claim_filed_on <= cover.claim_deadline
        ):
            cover.reason = CLAIM_DEADLINE_PASSED
        else:
            eligible.append(_Eligible(item, cover, policy))

    # 2. The limits in force on each delivery date. A layer whose limit cannot be converted covers nothing for
    #    this buyer (rule 9); a complement Top Up of such a primary neither.
    knocked: set[str] = set()
    limits: dict[tuple[str, date], Decimal | None] = {}  # by policy and delivery date: one lookup per day
    for e in eligible:
        key = (e.policy.ref, e.item.issue_date)
        if key not in limits:
            amount, _ = primary_limit(decisions, e.policy, e.item.issue_date)
            limits[key] = rates.convert(amount, e.policy.currency, currency)
        converted = limits[key]
        if converted is None:
            knocked.add(e.policy.ref)
            result.missing(e.policy.currency, currency)
        else:
            e.limit = converted
    top_up_limits: dict[tuple[str, str, date], Decimal | MissingRate] = {}
    for e in eligible:
        day = e.item.issue_date
        for top_up in top_ups:
            if top_up.primary_ref != e.policy.ref or not top_up.applies_to_country(country, day):
                continue
            if not top_up.in_period(day):
                continue
            if e.policy.ref in knocked and top_up.mode != "substitute":
                knocked.add(top_up.ref)
                continue
            key3 = (top_up.ref, e.policy.ref, day)
            if key3 not in top_up_limits:
                try:
                    top_up_limits[key3], _ = top_up_limit(decisions, top_up, e.policy, day, currency, rates)
                except MissingRate as missing:
                    top_up_limits[key3] = missing
            t_limit = top_up_limits[key3]
            if isinstance(t_limit, MissingRate):
                knocked.add(top_up.ref)
                result.missing(t_limit.source, t_limit.target)
                continue
            e.top_ups.append((top_up, t_limit))

    # 3. The walk by delivery date: each layer covers min(left, max(0, limit - already covered)) (rules 3, 4).
    used: dict[str, Decimal] = dict(resume.used)
    indemnifiable = resume.indemnifiable
    for e in eligible:
        cover, day = e.cover, e.item.issue_date
        left = cover.open_balance
        knocked_here = e.policy.ref in knocked
        if not knocked_here:
            done = used.get(e.policy.ref, ZERO)
            cover.covered_primary = min(left, max(ZERO, e.limit - done))
            used[e.policy.ref] = done + cover.covered_primary
            cover.indemnifiable += cover.covered_primary * e.policy.terms(day).indemnity_rate
            left -= cover.covered_primary
        any_limit = e.limit > 0 and not knocked_here
        for top_up, t_limit in e.top_ups:
            if top_up.ref in knocked:
                knocked_here = True
                continue
            any_limit = any_limit or t_limit > 0
            done = used.get(top_up.ref, ZERO)
            take = min(left, max(ZERO, t_limit - done))
            used[top_up.ref] = done + take
            cover.covered_top_up += take
            cover.indemnifiable += take * top_up.terms(day).indemnity_rate
            left -= take
        knocked_here = knocked_here or any(
            t.ref in knocked for t in top_ups
            if t.primary_ref == e.policy.ref and t.applies_to_country(country, day) and t.in_period(day))
        if left > 0:
            cover.reason = MISSING_FX_RATE if knocked_here else ABOVE_LIMIT if any_limit else NO_LIMIT
        cover.used_after = dict(used)
    state = dict(resume.used)
    for cover in result.invoices:
        if cover.used_after is not None:
            state = cover.used_after
        else:
            cover.used_after = state  # not walked: the state stands
        cover.indemnifiable_after = indemnifiable
        if cover.invoice_ref in unknown:
            continue
        cover.uncovered = cover.open_balance - cover.covered_primary - cover.covered_top_up
        if cover.uncovered == 0:
            cover.reason = None
        indemnifiable += cover.indemnifiable
        cover.indemnifiable_after = indemnifiable
        cover.indemnifiable = quantize(cover.indemnifiable, currency)
        result.covered_primary += cover.covered_primary
        result.covered_top_up += cover.covered_top_up
        result.uncovered += cover.uncovered
    result.covered_by_policy = {ref: amount for ref, amount in used.items() if ref not in knocked}
    result.indemnifiable = quantize(indemnifiable, currency)

    # 4. Limits in force today, for utilisation and the dashboard.
    limits_known = True
    if governing is not None:
        amount, decision = primary_limit(decisions, governing, valued_on)
        result.primary_limit = amount  # the governing policy's currency is the result currency
        result.limits.append(LimitInForce(governing.ref, "primary", amount,
                                          decision.source if decision is not None else "none",
                                          decision.expires_on if decision is not None else None))
        for top_up in top_ups:
            if top_up.primary_ref != governing.ref or not top_up.applies_to_country(country, valued_on):
                continue
            try:
                t_amount, source = top_up_limit(decisions, top_up, governing, valued_on, currency, rates)
            except MissingRate as missing:
                result.missing(missing.source, missing.target)
                limits_known = False
                continue
            explicit = decision_in_force(decisions, top_up.ref, valued_on) if source != "complement" else None
            result.top_up_limit += t_amount
            result.limits.append(LimitInForce(top_up.ref, "top_up", t_amount, source,
                                              explicit.expires_on if explicit is not None else None))
    total_limit = result.primary_limit + result.top_up_limit
    if total_limit > 0 and limits_known:
        result.utilisation = (result.outstanding / total_limit).quantize(UTILISATION_QUANTUM, ROUND_HALF_UP)
    result.status = _status(result)
    return result


def walk_ends_as(result: BuyerCover, used: Mapping[str, Decimal], indemnifiable: Decimal) -> None:
    """A resumed walk stopped after some invoices, in the state the full walk had reached at that point: the
    invoices after them would be walked exactly as before (the walk is monotone in delivery order), so the figures
    of the walk's end are those of the full walk's, given here: what each layer covers and the indemnifiable
    amount, unrounded. (A walk with a missing conversion is never stopped early: no layer is knocked out.)"""
    result.covered_by_policy = dict(used)
    result.indemnifiable = quantize(indemnifiable, result.currency)


def _status(r: BuyerCover) -> str:
    if r.errors:
        return "above_cover" if r.uncovered > 0 else "incomplete"
    if r.outstanding == 0:
        return "ok"
    if r.primary_limit == 0 and r.top_up_limit == 0 and r.covered_primary == 0 and r.covered_top_up == 0:
        return "no_cover"
    if r.uncovered > 0:
        return "above_cover"
    if r.covered_top_up > 0:
        return "above_primary"
    return "ok"
