"""A deliberately naive second implementation of DOMAIN.md's cover rules, for property tests of the engine.

It shares no code with `app/` (it must not import it): property tests compare the engine against it, and an oracle
that called the engine's own helpers would prove nothing. Plain loops over plain dataclasses, `decimal` and
`datetime` only; slow and obvious on purpose. The rules, made precise, are the ones of the oracle brief
(`/work/briefs/oracle.md`), read from DOMAIN.md; the choices it left open are written down where they are made
and listed in `CHOICES` below.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal

PRIMARY_KINDS = ("whole_turnover", "excess_of_loss")
ZERO = Decimal(0)

# Minor units per currency: our own table, not the service's.
MINOR_UNITS = {"JPY": 0, "KRW": 0, "BHD": 3, "KWD": 3, "JOD": 3, "OMR": 3, "TND": 3}

CHOICES = """
Where the brief leaves room, the oracle does this:
- Settled invoices (open balance 0) are listed in `invoices` with open 0, nothing covered, reason None; they need
  no rate (nothing to convert) but they count for stop of cover.
- An invoice whose conversion is missing has open None, covered 0 and 0, uncovered None, reason missing_fx_rate.
- A primary's layer needs its rate (policy currency -> result currency) as soon as it governs one eligible open
  invoice, whatever its limit (a missing decision included); if the rate is missing, the layer is knocked out.
- A Top Up needs a rate for an invoice when it applies to it (period, scope) and its limit there needs a conversion:
  an explicit decision in force (any status) or a cap, in the complement mode always, in the substitute mode only
  where the primary's insurer refused / withdrew / set 0.
- "A layer that applied to it was knocked out" uses the brief's own "applies" (period and scope) for Top Ups.
- A claim deadline is given for every invoice with a governing primary (open or not); None otherwise.
- Stop periods: only the primaries that have one appear in `stop_periods`; periods are merged when the next
  start is strictly before the current end (open intervals), kept even when they hold no whole day.
- Paid in full means the settlements sum to at least the amount; settlement dates are not compared with the
  valuation date (the scenarios never settle after it).

Where the brief reads DOMAIN.md in a way worth a second look (the oracle follows the brief):
- Stop of cover is per primary (invoices and deliveries it governs); rule 7 speaks of the buyer's deliveries.
- Amounts are compared in the buyer's result currency, not in each invoice's governing policy currency.
- "incomplete" is a fifth status (errors, nothing uncovered) that rule 5 does not list.
- An expired latest decision leaves no limit at all: an older unexpired decision does not come back.
- A decision's own maximum credit period wins even when longer than the policy's.
"""


# ---------------------------------------------------------------------------------------------------------- input


@dataclass(frozen=True)
class Terms:
    effective_from: date
    ends_on: date
    indemnity_rate: Decimal
    max_credit_period_days: int
    claim_deadline_days: int
    max_extension_days: int | None
    covered_countries: frozenset[str]
    excluded_countries: frozenset[str]
    country_overrides: dict[str, tuple[int | None, int | None]]
    ratio: Decimal = Decimal(1)
    per_buyer_cap: Decimal | None = None
    scope: frozenset[str] = frozenset()
    follows_discretionary: bool = False


@dataclass(frozen=True)
class PolicySpec:
    ref: str
    kind: str
    currency: str
    starts_on: date
    versions: tuple[Terms, ...]
    primary_ref: str | None = None
    mode: str | None = None


@dataclass(frozen=True)
class DecisionSpec:
    policy_ref: str
    status: str
    amount: Decimal
    effective_from: date
    seq: int
    expires_on: date | None = None
    source: str = "insurer"
    max_credit_period_days: int | None = None


@dataclass(frozen=True)
class InvoiceSpec:
    ref: str
    currency: str
    amount: Decimal
    issue_date: date
    due_date: date
    original_due_date: date
    settlements: tuple[tuple[date, Decimal], ...] = ()
    claim_filed_on: date | None = None


@dataclass(frozen=True)
class Scenario:
    valued_on: date
    country: str
    default_currency: str
    policies: tuple[PolicySpec, ...]
    decisions: tuple[DecisionSpec, ...]
    invoices: tuple[InvoiceSpec, ...]
    rates: dict[tuple[str, str], Decimal]


# --------------------------------------------------------------------------------------------------------- output


@dataclass
class InvoiceResult:
    ref: str
    open: Decimal | None
    covered_primary: Decimal
    covered_top_up: Decimal
    uncovered: Decimal | None
    reason: str | None
    claim_deadline: date | None
    policy_ref: str | None


@dataclass
class Result:
    currency: str
    outstanding: Decimal
    not_due: Decimal
    overdue_1_30: Decimal
    overdue_31_60: Decimal
    overdue_61_90: Decimal
    overdue_over_90: Decimal
    covered_primary: Decimal
    covered_top_up: Decimal
    uncovered: Decimal
    indemnifiable: Decimal
    primary_limit: Decimal | None
    top_up_limit: Decimal | None
    utilisation: Decimal | None
    status: str
    has_errors: bool
    missing_pairs: set[tuple[str, str]]
    stop_periods: dict[str, list[tuple[date, date | None, tuple[str, ...]]]]
    invoices: list[InvoiceResult] = field(default_factory=list)

    def invoice(self, ref: str) -> InvoiceResult:
        for row in self.invoices:
            if row.ref == ref:
                return row
        raise KeyError(ref)


# ----------------------------------------------------------------------------------------------- money and rates


def quantize(amount: Decimal, currency: str) -> Decimal:
    places = MINOR_UNITS.get(currency, 2)
    return amount.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP)


def rate(rates: dict[tuple[str, str], Decimal], source: str, target: str) -> Decimal | None:
    """Units of `target` per 1 `source`; None when no rate gives it (never 1:1 by default)."""
    if source == target:
        return Decimal(1)
    if (source, target) in rates:
        return rates[(source, target)]
    if (target, source) in rates:
        return Decimal(1) / rates[(target, source)]
    if ("EUR", target) in rates and ("EUR", source) in rates:
        return rates[("EUR", target)] / rates[("EUR", source)]
    return None


def convert(rates: dict[tuple[str, str], Decimal], amount: Decimal, source: str, target: str) -> Decimal | None:
    r = rate(rates, source, target)
    if r is None:
        return None
    return quantize(amount * r, target)


# ------------------------------------------------------------------------------------------------------- invoices


def open_balance(invoice: InvoiceSpec) -> Decimal:
    paid = ZERO
    for _day, amount in invoice.settlements:
        paid = paid + amount
    balance = invoice.amount - paid
    if balance < 0:
        return ZERO
    return balance


def paid_in_full_on(invoice: InvoiceSpec) -> date | None:
    paid = ZERO
    last = None
    for day, amount in invoice.settlements:
        paid = paid + amount
        if last is None or day > last:
            last = day
    if invoice.settlements and paid >= invoice.amount:
        return last
    return None


def bucket_of(invoice: InvoiceSpec, valued_on: date) -> str:
    days = (valued_on - invoice.due_date).days
    if days <= 0:
        return "not_due"
    if days <= 30:
        return "overdue_1_30"
    if days <= 60:
        return "overdue_31_60"
    if days <= 90:
        return "overdue_61_90"
    return "overdue_over_90"


# ------------------------------------------------------------------------------------------------------- policies


def terms_on(policy: PolicySpec, day: date) -> Terms:
    chosen = None
    for version in policy.versions:
        if version.effective_from <= day and (chosen is None or version.effective_from > chosen.effective_from):
            chosen = version
    if chosen is None:
        for version in policy.versions:
            if chosen is None or version.effective_from < chosen.effective_from:
                chosen = version
    return chosen


def in_territory(policy: PolicySpec, country: str, day: date) -> bool:
    terms = terms_on(policy, day)
    if country in terms.excluded_countries:
        return False
    return len(terms.covered_countries) == 0 or country in terms.covered_countries


def in_period(policy: PolicySpec, day: date) -> bool:
    return policy.starts_on <= day <= terms_on(policy, day).ends_on


def top_up_applies(top_up: PolicySpec, country: str, day: date) -> bool:
    if not in_period(top_up, day):
        return False
    scope = terms_on(top_up, day).scope
    return len(scope) == 0 or country in scope


def decision_in_force(decisions: tuple[DecisionSpec, ...], policy_ref: str, day: date) -> DecisionSpec | None:
    candidates = [d for d in decisions if d.policy_ref == policy_ref and d.effective_from <= day]
    if any(d.source == "insurer" for d in candidates):
        candidates = [d for d in candidates if d.source == "insurer"]
    best = None
    for d in candidates:
        if best is None or (d.effective_from, d.seq) > (best.effective_from, best.seq):
            best = d
    if best is None:
        return None
    if best.expires_on is not None and day > best.expires_on:
        return None
    return best


def limit_of(decision: DecisionSpec | None) -> Decimal:
    if decision is None or decision.status in ("refused", "withdrawn"):
        return ZERO
    return decision.amount


def latest_primary(candidates: list[PolicySpec]) -> PolicySpec | None:
    best = None
    for p in candidates:
        if best is None or (p.starts_on, p.ref) > (best.starts_on, best.ref):
            best = p
    return best


def governing_primary(scenario: Scenario, day: date) -> tuple[PolicySpec | None, str | None]:
    """The primary governing a delivery on `day`, else None and the reason."""
    primaries = [p for p in scenario.policies if p.kind in PRIMARY_KINDS]
    if not primaries:
        return None, "no_limit"
    inside = [p for p in primaries if in_territory(p, scenario.country, day)]
    if not inside:
        return None, "outside_territory"
    current = [p for p in inside if in_period(p, day)]
    if not current:
        return None, "outside_policy_period"
    return latest_primary(current), None


def buyer_primary(scenario: Scenario) -> PolicySpec | None:
    today = scenario.valued_on
    primaries = [p for p in scenario.policies if p.kind in PRIMARY_KINDS]
    inside = [p for p in primaries if in_territory(p, scenario.country, today)]
    current = [p for p in inside if in_period(p, today)]
    if current:
        return latest_primary(current)
    return latest_primary(inside)


def claim_deadline(policy: PolicySpec, invoice: InvoiceSpec, country: str) -> date:
    terms = terms_on(policy, invoice.issue_date)
    days = terms.claim_deadline_days
    override = terms.country_overrides.get(country)
    if override is not None and override[1] is not None:
        days = override[1]
    return invoice.original_due_date + timedelta(days=days)


def max_terms(scenario: Scenario, policy: PolicySpec, day: date) -> int:
    decision = decision_in_force(scenario.decisions, policy.ref, day)
    if decision is not None and decision.max_credit_period_days is not None:
        return decision.max_credit_period_days
    terms = terms_on(policy, day)
    override = terms.country_overrides.get(scenario.country)
    if override is not None and override[0] is not None:
        return override[0]
    return terms.max_credit_period_days


# --------------------------------------------------------------------------------------------------- stop of cover


def stop_intervals(scenario: Scenario, policy: PolicySpec) -> list[tuple[date, date | None, str]]:
    """(start, end or None, causing invoice) for each invoice governed by `policy` that stopped its cover."""
    out = []
    for invoice in scenario.invoices:
        governing, _ = governing_primary(scenario, invoice.issue_date)
        if governing is None or governing.ref != policy.ref:
            continue
        extension = terms_on(policy, invoice.issue_date).max_extension_days
        if extension is None:
            continue
        start = invoice.original_due_date + timedelta(days=extension)
        if not start < scenario.valued_on:
            continue
        paid_on = paid_in_full_on(invoice)
        if paid_on is not None and paid_on <= start:
            continue
        out.append((start, paid_on, invoice.ref))
    return out


def during_stop(intervals: list[tuple[date, date | None, str]], day: date) -> bool:
    return any(start < day and (end is None or day < end) for start, end, _ref in intervals)


def merge_stops(intervals: list[tuple[date, date | None, str]]) -> list[tuple[date, date | None, tuple[str, ...]]]:
    merged: list[list] = []
    for start, end, ref in sorted(intervals, key=lambda i: i[0]):
        if merged:
            last = merged[-1]
            if last[1] is None or start < last[1]:
                if last[1] is not None and (end is None or end > last[1]):
                    last[1] = end
                last[2].append(ref)
                continue
        merged.append([start, end, [ref]])
    return [(start, end, tuple(sorted(refs))) for start, end, refs in merged]


# -------------------------------------------------------------------------------------------------------- Top Ups


def top_up_limit(scenario: Scenario, top_up: PolicySpec, primary: PolicySpec, day: date, primary_limit: Decimal | None,
                 currency: str) -> tuple[Decimal | None, set[tuple[str, str]]]:
    """T(day) in `currency` for a Top Up that applies on `day`, with the missing pairs when it cannot be known.

    `primary_limit` is L(day) already converted, or None when the primary's layer was knocked out.
    """
    terms = terms_on(top_up, day)
    own = decision_in_force(scenario.decisions, top_up.ref, day)
    missing: set[tuple[str, str]] = set()
    limit: Decimal | None
    if top_up.mode == "complement":
        if own is not None:
            limit = convert(scenario.rates, limit_of(own), top_up.currency, currency)
            if limit is None:
                missing.add((top_up.currency, currency))
        elif primary_limit is None:
            limit = None
        else:
            primary_decision = decision_in_force(scenario.decisions, primary.ref, day)
            followed = ZERO
            if primary_decision is not None and (primary_decision.source == "insurer" or terms.follows_discretionary):
                followed = primary_limit
            limit = quantize(terms.ratio * followed, currency)
    else:
        primary_decision = decision_in_force(scenario.decisions, primary.ref, day)
        refused = (primary_decision is not None and primary_decision.source == "insurer"
                   and (primary_decision.status in ("refused", "withdrawn") or primary_decision.amount == 0))
        if not refused:
            return ZERO, missing
        if own is not None:
            limit = convert(scenario.rates, limit_of(own), top_up.currency, currency)
            if limit is None:
                missing.add((top_up.currency, currency))
        else:
            limit = ZERO
    if terms.per_buyer_cap is not None:
        cap = convert(scenario.rates, terms.per_buyer_cap, top_up.currency, currency)
        if cap is None:
            missing.add((top_up.currency, currency))
            limit = None
        elif limit is not None and cap < limit:
            limit = cap
    if missing:
        return None, missing
    return limit, missing


# ------------------------------------------------------------------------------------------------------- evaluate


def evaluate(scenario: Scenario) -> Result:
    today = scenario.valued_on
    country = scenario.country
    buyer_policy = buyer_primary(scenario)
    currency = buyer_policy.currency if buyer_policy is not None else scenario.default_currency
    missing: set[tuple[str, str]] = set()
    primaries = [p for p in scenario.policies if p.kind in PRIMARY_KINDS]
    top_ups = sorted([p for p in scenario.policies if p.kind == "top_up"], key=lambda p: p.ref)

    stops = {}
    for p in primaries:
        stops[p.ref] = stop_intervals(scenario, p)

    # Step 1: each invoice's open balance in the result currency, governing primary, eligibility.
    rows: dict[str, InvoiceResult] = {}
    eligible: dict[str, list[InvoiceSpec]] = {}
    known_open: dict[str, Decimal] = {}
    ordered = sorted(scenario.invoices, key=lambda i: (i.issue_date, i.ref))
    for invoice in ordered:
        d = invoice.issue_date
        policy, why = governing_primary(scenario, d)
        deadline = claim_deadline(policy, invoice, country) if policy is not None else None
        row = InvoiceResult(invoice.ref, ZERO, ZERO, ZERO, ZERO, None, deadline,
                            policy.ref if policy is not None else None)
        rows[invoice.ref] = row
        balance = open_balance(invoice)
        if balance == 0:
            continue
        amount = convert(scenario.rates, balance, invoice.currency, currency)
        if amount is None:
            missing.add((invoice.currency, currency))
            row.open = None
            row.uncovered = None
            row.reason = "missing_fx_rate"
            continue
        row.open = amount
        row.uncovered = amount
        known_open[invoice.ref] = amount
        if policy is None:
            row.reason = why
            continue
        if (invoice.original_due_date - d).days > max_terms(scenario, policy, d):
            row.reason = "terms_exceed_max_credit_period"
            continue
        if during_stop(stops[policy.ref], d):
            row.reason = "delivered_during_stop_of_cover"
            continue
        if today > deadline and not (invoice.claim_filed_on is not None and invoice.claim_filed_on <= deadline):
            row.reason = "claim_deadline_passed"
            continue
        eligible.setdefault(policy.ref, []).append(invoice)

    # Step 2: the layers, per governing primary.
    indemnifiable = ZERO
    for p in primaries:
        walk = eligible.get(p.ref, [])
        if not walk:
            continue
        knocked = rate(scenario.rates, p.currency, currency) is None
        if knocked:
            missing.add((p.currency, currency))
        limits: dict[str, Decimal | None] = {}
        left: dict[str, Decimal] = {}
        covered = ZERO
        for invoice in walk:
            d = invoice.issue_date
            amount = known_open[invoice.ref]
            if knocked:
                limits[invoice.ref] = None
                left[invoice.ref] = amount
                continue
            decision = decision_in_force(scenario.decisions, p.ref, d)
            limit = convert(scenario.rates, limit_of(decision), p.currency, currency)
            limits[invoice.ref] = limit
            headroom = limit - covered
            if headroom < 0:
                headroom = ZERO
            take = min(amount, headroom)
            covered = covered + take
            rows[invoice.ref].covered_primary = take
            left[invoice.ref] = amount - take
            indemnifiable = indemnifiable + take * terms_on(p, d).indemnity_rate

        applied_knocked: dict[str, bool] = {invoice.ref: knocked for invoice in walk}
        applied_positive: dict[str, bool] = {}
        for invoice in walk:
            limit = limits[invoice.ref]
            applied_positive[invoice.ref] = limit is not None and limit > 0

        for u in top_ups:
            if u.primary_ref != p.ref:
                continue
            applying = [i for i in walk if top_up_applies(u, country, i.issue_date)]
            # First pass: can this Top Up be known for every invoice it applies to?
            # A complement Top Up of a knocked-out primary is knocked out with it (its limit depends on L).
            u_knocked = u.mode == "complement" and knocked
            u_limits: dict[str, Decimal] = {}
            for invoice in [] if u_knocked else applying:
                t, pairs = top_up_limit(scenario, u, p, invoice.issue_date, limits[invoice.ref], currency)
                if t is None:
                    u_knocked = True
                    missing.update(pairs)
                else:
                    u_limits[invoice.ref] = t
            for invoice in applying:
                if u_knocked:
                    applied_knocked[invoice.ref] = True
                elif u_limits[invoice.ref] > 0:
                    applied_positive[invoice.ref] = True
            if u_knocked:
                continue
            # Second pass: the walk over what is left.
            covered_u = ZERO
            for invoice in applying:
                headroom = u_limits[invoice.ref] - covered_u
                if headroom < 0:
                    headroom = ZERO
                take = min(left[invoice.ref], headroom)
                covered_u = covered_u + take
                left[invoice.ref] = left[invoice.ref] - take
                rows[invoice.ref].covered_top_up = rows[invoice.ref].covered_top_up + take
                indemnifiable = indemnifiable + take * terms_on(u, invoice.issue_date).indemnity_rate

        for invoice in walk:
            row = rows[invoice.ref]
            row.uncovered = left[invoice.ref]
            if row.uncovered > 0:
                if applied_knocked[invoice.ref]:
                    row.reason = "missing_fx_rate"
                elif applied_positive[invoice.ref]:
                    row.reason = "above_limit"
                else:
                    row.reason = "no_limit"

    for row in rows.values():
        if row.uncovered is not None and row.uncovered == 0:
            row.reason = None

    # Step 3: sums over the known invoices.
    sums = {name: ZERO for name in ("outstanding", "not_due", "overdue_1_30", "overdue_31_60", "overdue_61_90",
                                    "overdue_over_90", "covered_primary", "covered_top_up", "uncovered")}
    for invoice in ordered:
        row = rows[invoice.ref]
        if row.open is None:
            continue
        sums["outstanding"] += row.open
        sums[bucket_of(invoice, today)] += row.open
        sums["covered_primary"] += row.covered_primary
        sums["covered_top_up"] += row.covered_top_up
        sums["uncovered"] += row.uncovered

    # Step 4: limits in force today, utilisation, status.
    primary_limit: Decimal | None = ZERO
    top_up_total: Decimal | None = ZERO
    if buyer_policy is not None:
        decision = decision_in_force(scenario.decisions, buyer_policy.ref, today)
        primary_limit = convert(scenario.rates, limit_of(decision), buyer_policy.currency, currency)
        for u in top_ups:
            if u.primary_ref != buyer_policy.ref or not top_up_applies(u, country, today):
                continue
            t, pairs = top_up_limit(scenario, u, buyer_policy, today, primary_limit, currency)
            if t is None:
                missing.update(pairs)
                top_up_total = None
            elif top_up_total is not None:
                top_up_total = top_up_total + t
    utilisation = None
    if primary_limit is not None and top_up_total is not None and primary_limit + top_up_total != 0:
        utilisation = (sums["outstanding"] / (primary_limit + top_up_total)).quantize(
            Decimal("0.0001"), rounding=ROUND_HALF_UP)

    if missing:
        status = "above_cover" if sums["uncovered"] > 0 else "incomplete"
    elif sums["outstanding"] == 0:
        status = "ok"
    elif (primary_limit == 0 and top_up_total == 0
          and sums["covered_primary"] == 0 and sums["covered_top_up"] == 0):
        status = "no_cover"
    elif sums["uncovered"] > 0:
        status = "above_cover"
    elif sums["covered_top_up"] > 0:
        status = "above_primary"
    else:
        status = "ok"

    stop_periods = {}
    for p in primaries:
        if stops[p.ref]:
            stop_periods[p.ref] = merge_stops(stops[p.ref])

    return Result(
        currency=currency,
        outstanding=sums["outstanding"],
        not_due=sums["not_due"],
        overdue_1_30=sums["overdue_1_30"],
        overdue_31_60=sums["overdue_31_60"],
        overdue_61_90=sums["overdue_61_90"],
        overdue_over_90=sums["overdue_over_90"],
        covered_primary=sums["covered_primary"],
        covered_top_up=sums["covered_top_up"],
        uncovered=sums["uncovered"],
        indemnifiable=quantize(indemnifiable, currency),
        primary_limit=primary_limit,
        top_up_limit=top_up_total,
        utilisation=utilisation,
        status=status,
        has_errors=bool(missing),
        missing_pairs=missing,
        stop_periods=stop_periods,
        invoices=[rows[i.ref] for i in ordered],
    )
