"""Policies, cover decisions, country limits and FX rates, and their translation for the engine.

Every change that moves cover refreshes the stored exposure in the same transaction.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import Any

from app.alerts import service as alerts
from app.core import public_ids
from app.core.clock import utcnow
from app.core.context import Context
from app.core.errors import Conflict, FxRateMissing, Invalid, NotFound, ProblemError
from app.core.fields import rate_problem
from app.core.money import fits_currency, is_known_currency, quantize
from app.cover import engine
from app.cover import repository as repo
from app.cover.inputs import engine_decisions, engine_policies
from app.cover.models import CountryLimit, FxRate, LimitDecision, Policy, PolicyTerms
from app.cover.schemas import (
    BuyerLimitsOut,
    CountryLimitIn,
    CountryLimitOut,
    CountryOverride,
    FxImportOut,
    FxRateIn,
    LimitIn,
    LimitInForceOut,
    LimitOut,
    PolicyIn,
    PolicyOut,
    TermsOut,
)
from app.exposure import repository as exposure_repo
from app.exposure import revaluation
from app.exposure import service as exposure
from app.exposure.models import Revaluation
from app.exposure.revaluation import EVERYONE, NOBODY, Affected
from app.ledger import repository as ledger_repo
from app.ledger.models import Buyer

_TOP_UP_ONLY = ("primary_policy_ref", "mode", "ratio", "per_buyer_cap", "countries", "follows_discretionary")
# A Top Up follows its primary's eligibility terms: these are the primary's, and refused on a Top Up rather than
# stored and ignored.
_PRIMARY_ONLY = ("max_credit_period_days", "claim_deadline_days", "max_extension_days", "covered_countries",
                 "excluded_countries", "country_overrides", "aggregate_first_loss", "discretionary_limit_max")
_IDENTITY = ("insurer", "kind", "currency", "starts_on", "mode")
# Not cover terms (no version history): what the reports estimate the premium and the declarations with.
_PLAIN = ("premium_rate", "minimum_premium", "overdue_declaration_days")


def _check_kind(ctx: Context, ref: str, body: PolicyIn) -> Policy | None:
    """The fields each kind takes; returns the primary policy of a Top Up."""
    given = body.model_fields_set
    if body.kind == "top_up":
        for f in ("primary_policy_ref", "mode"):
            if getattr(body, f) is None:
                raise Invalid(f"{f}: required for a top_up policy.", field=f"/{f}")
        primary = repo.policy_by_ref(ctx.session, body.primary_policy_ref or "")
        if primary is None or primary.kind == "top_up" or primary.ref == ref:
            raise Invalid(f"primary_policy_ref: no primary policy '{body.primary_policy_ref}'.",
                          field="/primary_policy_ref")
        for f in _PRIMARY_ONLY:
            if f in given and getattr(body, f) not in (None, [], {}):
                raise Invalid(f"{f}: a Top Up follows its primary policy's terms; set it on '{primary.ref}'.",
                              field=f"/{f}")
        if body.follows_discretionary and body.mode != "complement":
            raise Invalid("follows_discretionary: only for a complement Top Up.", field="/follows_discretionary")
        return primary
    for f in _TOP_UP_ONLY:
        if f in given and getattr(body, f) not in (None, [], False):
            raise Invalid(f"{f}: only for a top_up policy.", field=f"/{f}")
    for f in ("max_credit_period_days", "claim_deadline_days"):
        if getattr(body, f) is None:
            raise Invalid(f"{f}: required for a {body.kind} policy.", field=f"/{f}")
    if body.kind == "excess_of_loss":
        for f in ("aggregate_first_loss", "discretionary_limit_max"):
            if getattr(body, f) is None:
                raise Invalid(f"{f}: required for an excess_of_loss policy.", field=f"/{f}")
    elif body.aggregate_first_loss is not None:
        raise Invalid("aggregate_first_loss: only for an excess_of_loss policy.", field="/aggregate_first_loss")
    return None


def _term_values(body: PolicyIn) -> dict[str, Any]:
    top_up = body.kind == "top_up"
    return {
        "ends_on": body.ends_on, "indemnity_rate": body.indemnity_rate,
        "max_credit_period_days": body.max_credit_period_days, "claim_deadline_days": body.claim_deadline_days,
        "max_extension_days": body.max_extension_days,
        "covered_countries": sorted(set(body.covered_countries)),
        "excluded_countries": sorted(set(body.excluded_countries)),
        "country_overrides": {k: v.model_dump(exclude_none=True) for k, v in sorted(body.country_overrides.items())},
        "aggregate_first_loss": body.aggregate_first_loss, "discretionary_limit_max": body.discretionary_limit_max,
        "ratio": (body.ratio if body.ratio is not None else Decimal(1)) if top_up else None,
        "per_buyer_cap": body.per_buyer_cap, "top_up_countries": sorted(set(body.countries)),
        "follows_discretionary": bool(body.follows_discretionary),
    }


def put_policy(ctx: Context, ref: str, body: PolicyIn) -> tuple[Policy, bool, Revaluation | None]:
    """Create a policy, correct its identity, or endorse its terms from `effective_from` (rule 8).

    The terms of an existing policy are versions: writing other terms adds the version effective from
    `effective_from` (default today), or replaces the version of that same day; on or before `starts_on`, it
    corrects the original terms. Deliveries are judged by the version in force on their date, so nothing made
    before an endorsement changes. An unchanged body changes nothing and revalues nobody; an endorsement of the
    territory or country overrides only, the buyers of those countries; anything else, every buyer. Returns the
    background revaluation when they are too many to revalue here.
    """
    session = ctx.session
    primary = _check_kind(ctx, ref, body)
    values = _term_values(body)
    policy = repo.policy_by_ref(session, ref)
    created = policy is None
    if policy is None:
        policy = Policy(ref=ref)
        session.add(policy)
    else:
        if body.kind == "top_up" and policy.kind != "top_up":
            dependants = [p.ref for p in repo.policies(session) if p.primary_policy_id == policy.id]
            if dependants:
                raise Invalid(f"kind: Top Up policies {dependants} stand on this primary policy.", field="/kind")
        if body.currency != policy.currency and repo.has_decisions(session, policy.id):
            raise Invalid(f"currency: policy '{ref}' has cover decisions in {policy.currency}; its currency cannot "
                          "change (write a new policy).", field="/currency")
    identity_changed = created or any(getattr(policy, f) != getattr(body, f) for f in _IDENTITY) or (
        policy.primary_policy_id != (primary.id if primary is not None else None))
    for f in _PLAIN:
        setattr(policy, f, getattr(body, f))
    for f in _IDENTITY:
        setattr(policy, f, getattr(body, f))
    policy.primary_policy_id = primary.id if primary is not None else None
    for f, v in values.items():  # the policy row shows the terms as last written
        setattr(policy, f, v)
    session.flush()

    versions = repo.terms_of(session, [policy.id])
    effective = policy.starts_on if created else (body.effective_from or ctx.today)
    dropped = False
    if effective <= policy.starts_on or not versions:
        effective = policy.starts_on
        # A correction of the original terms: it replaces the first version (and any dated on or before the start).
        target = next((v for v in versions if v.effective_from <= policy.starts_on), None)
        for v in versions:
            if v.effective_from <= policy.starts_on and v is not target:
                session.delete(v)
                dropped = True
    else:
        target = next((v for v in versions if v.effective_from == effective), None)
    in_force = max((v for v in versions if v.effective_from <= effective), key=lambda v: v.effective_from,
                   default=None)
    moved = target is not None and target.effective_from != effective
    terms_changed = in_force is None or any(getattr(in_force, f) != v for f, v in values.items()) or moved
    if identity_changed or in_force is None or moved or dropped:
        affected = EVERYONE
    else:
        affected = _affected_by_terms(in_force, values)
    if terms_changed:
        if target is None:
            target = PolicyTerms(policy_id=policy.id, effective_from=effective, **values)
            session.add(target)
        else:
            target.effective_from = effective
            for f, v in values.items():
                setattr(target, f, v)
            target.recorded_at = utcnow()
        session.flush()
    job = None
    if affected:
        what = "created" if created else f"changed from {effective.isoformat()}"
        job = revaluation.revalue(ctx, affected, f"policy {ref} {what}")
        exposure.bump_version(ctx)
    return policy, created, job


_TERRITORY = ("covered_countries", "excluded_countries", "country_overrides", "top_up_countries")


def _affected_by_terms(before: PolicyTerms, values: dict[str, Any]) -> Affected:
    """Who new terms can move, against the terms they replace: nobody when equal; the buyers of the countries
    whose territory, Top Up scope or country override changed when only those changed; everyone otherwise."""
    changed = {f for f, v in values.items() if getattr(before, f) != v}
    if not changed:
        return NOBODY
    if changed - set(_TERRITORY):
        return EVERYONE
    countries: set[str] = set()
    for f in ("covered_countries", "top_up_countries"):
        old, new = set(getattr(before, f)), set(values[f])
        if old != new and not (old and new):
            return EVERYONE  # an empty list is the whole world
        countries |= old ^ new
    countries |= set(before.excluded_countries) ^ set(values["excluded_countries"])
    old_rules, new_rules = before.country_overrides, values["country_overrides"]
    countries |= {c for c in old_rules.keys() | new_rules.keys() if old_rules.get(c) != new_rules.get(c)}
    return Affected(countries=frozenset(countries))


def get_policy(ctx: Context, ref: str) -> Policy:
    policy = repo.policy_by_ref(ctx.session, ref)
    if policy is None:
        raise NotFound(f"No policy '{ref}'.")
    return policy


def _terms_out(t: PolicyTerms | Policy, currency: str, effective_from: date) -> dict[str, Any]:
    return {
        "effective_from": effective_from, "ends_on": t.ends_on, "indemnity_rate": t.indemnity_rate.normalize(),
        "max_credit_period_days": t.max_credit_period_days, "claim_deadline_days": t.claim_deadline_days,
        "max_extension_days": t.max_extension_days, "covered_countries": t.covered_countries,
        "excluded_countries": t.excluded_countries,
        "country_overrides": {k: CountryOverride(**v) for k, v in t.country_overrides.items()},
        "aggregate_first_loss": _money(t.aggregate_first_loss, currency),
        "discretionary_limit_max": _money(t.discretionary_limit_max, currency),
        "ratio": t.ratio.normalize() if t.ratio is not None else None,
        "per_buyer_cap": _money(t.per_buyer_cap, currency), "countries": t.top_up_countries,
        "follows_discretionary": bool(t.follows_discretionary),
    }


def policy_out(ctx: Context, policy: Policy, refs_by_id: dict[int, str] | None = None,
               versions: list[PolicyTerms] | None = None) -> PolicyOut:
    if refs_by_id is None:
        refs_by_id = {p.id: p.ref for p in repo.policies(ctx.session)}
    if versions is None:
        versions = repo.terms_of(ctx.session, [policy.id])
    history = [TermsOut(**_terms_out(v, policy.currency, v.effective_from)) for v in versions] or [
        TermsOut(**_terms_out(policy, policy.currency, policy.starts_on))]
    current = max((v for v in history if v.effective_from <= ctx.today), key=lambda v: v.effective_from,
                   default=history[0])
    return PolicyOut(
        **current.model_dump(), policy_ref=policy.ref, insurer=policy.insurer,
        kind=policy.kind,  # type: ignore[arg-type]
        currency=policy.currency, starts_on=policy.starts_on,
        primary_policy_ref=refs_by_id.get(policy.primary_policy_id) if policy.primary_policy_id else None,
        mode=policy.mode, as_of=ctx.today, versions=history,
        premium_rate=policy.premium_rate.normalize() if policy.premium_rate is not None else None,
        minimum_premium=_money(policy.minimum_premium, policy.currency),
        overdue_declaration_days=policy.overdue_declaration_days,
    )


def _money(amount: Decimal | None, currency: str) -> Decimal | None:
    return None if amount is None else quantize(amount, currency)


# --- cover decisions ------------------------------------------------------------------------------


def add_limit(ctx: Context, policy_ref: str, body: LimitIn) -> LimitDecision:
    [result] = add_limits(ctx, [(policy_ref, body)])
    if isinstance(result, ProblemError):
        raise result
    return result


def add_limits(ctx: Context, items: Sequence[tuple[str, LimitIn]]) -> list[LimitDecision | ProblemError]:
    """Record decisions, each checked on its own (its problem in its place, nothing written for it): their buyers
    locked in one statement, the decisions written in one flush, and the exposure of the buyers they move refreshed
    once for all (a file of 50,000 decisions imported one by one took a refresh per decision).

    A buyer's decisions in one call count as one change for the alert `limit_reduced_below_exposure`: raised when
    one of them lowers the limit (a reduction, refusal or withdrawal, or a limit below the one before the call) and
    exposure is left uncovered; with one decision, exactly as that decision alone."""
    session = ctx.session
    buyers = ledger_repo.buyers_by_refs(session, (body.buyer_ref for _, body in items), for_update=True)
    stored = exposure_repo.rows_by_buyer(session, [b.id for b in buyers.values()])
    previous = {b: row.primary_limit for b, row in stored.items()}
    policies: dict[str, Policy] = {}
    out: list[LimitDecision | ProblemError] = []
    status_of: dict[int, str] = {}  # buyer id -> the status its decisions count for (the last lowering one)
    pending = False
    for policy_ref, body in items:
        try:
            policy = policies.get(policy_ref) or get_policy(ctx, policy_ref)
            policies[policy_ref] = policy
            if pending and (body.decision_ref or body.source == "discretionary"):
                session.flush()  # the checks below read the decisions recorded so far, this call's included
                pending = False
            decision = _decision(ctx, policy, buyers.get(body.buyer_ref), body)
        except ProblemError as problem:
            out.append(problem)
            continue
        session.add(decision)
        pending = True
        out.append(decision)
        if decision.buyer_id not in status_of or body.status in LOWERING:
            status_of[decision.buyer_id] = body.status
    session.flush()
    by_id = {b.id: b for b in buyers.values()}
    results = exposure.refresh_buyers(ctx, status_of, results=True)
    for buyer_id, status in status_of.items():
        alerts.after_decision(ctx, by_id[buyer_id], results[buyer_id], status, previous.get(buyer_id))
    return out


LOWERING = ("reduced", "refused", "withdrawn")


def _decision(ctx: Context, policy: Policy, buyer: Buyer | None, body: LimitIn) -> LimitDecision:
    """A new decision on the buyer, checked (not yet added to the session)."""
    session = ctx.session
    if buyer is None:
        raise Invalid(f"buyer_ref: no buyer '{body.buyer_ref}'.", field="/buyer_ref")
    amount = body.amount
    if body.status in ("refused", "withdrawn"):
        if amount not in (None, Decimal(0)):
            raise Invalid(f"amount: a {body.status} decision has no amount (0).", field="/amount")
        amount = Decimal(0)
    elif amount is None:
        raise Invalid(f"amount: required for a {body.status} decision.", field="/amount")
    elif body.status in ("granted", "partly_granted") and amount == 0:
        raise Invalid(f"amount: a {body.status} decision needs an amount above 0 (else: refused).", field="/amount")
    if not fits_currency(amount, policy.currency):
        raise Invalid(f"amount: has more decimals than {policy.currency} allows.", field="/amount")
    if body.source == "discretionary":
        _check_discretionary(ctx, policy, buyer, body, amount)
    if body.decision_ref and repo.decision_by_ref(session, policy.id, body.decision_ref) is not None:
        raise Conflict(f"decision_ref '{body.decision_ref}' is already recorded for policy '{policy.ref}'.")
    return LimitDecision(
        policy_id=policy.id, buyer_id=buyer.id, amount=amount, status=body.status,
        effective_from=body.effective_from, expires_on=body.expires_on, source=body.source,
        decision_ref=body.decision_ref, requested_amount=body.requested_amount,
        max_credit_period_days=body.max_credit_period_days,
    )


def _check_discretionary(ctx: Context, policy: Policy, buyer: Buyer, body: LimitIn, amount: Decimal) -> None:
    """Rule 10: up to the policy's ceiling, and never once the insurer has decided on the buyer."""
    if policy.kind == "top_up":
        raise Invalid("source: a Top Up has no discretionary limits.", field="/source")
    terms = _terms_on(ctx, policy, body.effective_from)
    ceiling = terms.discretionary_limit_max if terms is not None else policy.discretionary_limit_max
    if ceiling is None:
        raise Invalid(f"source: policy '{policy.ref}' sets no discretionary ceiling (discretionary_limit_max): "
                      "limits on it are the insurer's.", field="/source")
    if amount > ceiling:
        raise Invalid(f"amount: above the policy's discretionary ceiling of {quantize(ceiling, policy.currency)} "
                      f"{policy.currency}: ask the insurer for this limit.", field="/amount")
    decided = repo.insurer_decision(ctx.session, policy.id, buyer.id)
    if decided is not None:
        name = f"'{decided.decision_ref}'" if decided.decision_ref else f"{decided.id}"
        raise Invalid(
            f"source: the insurer decided on buyer '{buyer.ref}' (decision {name}, {decided.status}, effective "
            f"{decided.effective_from.isoformat()}): discretionary limits are cancelled from then on.",
            field="/source")


def _terms_on(ctx: Context, policy: Policy, day: date) -> PolicyTerms | None:
    versions = repo.terms_of(ctx.session, [policy.id])
    return max((v for v in versions if v.effective_from <= day), key=lambda v: v.effective_from,
               default=versions[0] if versions else None)


def limit_out(d: LimitDecision, policies_by_id: dict[int, Policy], buyer_ref: str) -> LimitOut:
    p = policies_by_id[d.policy_id]
    return LimitOut(
        id=public_ids.of(d), policy_ref=p.ref, buyer_ref=buyer_ref, currency=p.currency,
        amount=quantize(d.amount, p.currency),
        status=d.status,  # type: ignore[arg-type]
        effective_from=d.effective_from, expires_on=d.expires_on, source=d.source, decision_ref=d.decision_ref,
        requested_amount=_money(d.requested_amount, p.currency), max_credit_period_days=d.max_credit_period_days,
    )


def buyer_limits(ctx: Context, buyer: Buyer, at: date) -> BuyerLimitsOut:
    session = ctx.session
    policies = repo.policies(session)
    by_id = {p.id: p for p in policies}
    refs = {p.id: p.ref for p in policies}
    rows = repo.decisions_of_buyers(session, [buyer.id])
    decisions = engine_decisions(rows, refs)
    eps = {p.ref: p for p in engine_policies(policies, repo.terms_of(session))}
    in_force: list[LimitInForceOut] = []
    rates = engine.Rates(repo.rates_on(session, at))
    for p in policies:
        ep = eps[p.ref]
        if ep.is_primary:
            if not ep.in_territory(buyer.country, at):
                continue
            amount, d = engine.primary_limit(decisions, ep, at)
            in_force.append(LimitInForceOut(
                policy_ref=p.ref, layer="primary", currency=p.currency, amount=quantize(amount, p.currency),
                source=d.source if d else "none",
                decision_id=public_ids.encode(ctx.tenant, "limit_decisions", d.seq) if d else None))
        elif ep.primary_ref in eps:
            if not ep.applies_to_country(buyer.country, at):
                continue
            try:
                amount, source = engine.top_up_limit(decisions, ep, eps[ep.primary_ref], at, p.currency, rates)
            except engine.MissingRate as missing:
                raise FxRateMissing([(missing.source, missing.target)], at) from None
            explicit = engine.decision_in_force(decisions, p.ref, at)
            in_force.append(LimitInForceOut(
                policy_ref=p.ref, layer="top_up", currency=p.currency, amount=amount, source=source,
                decision_id=public_ids.encode(ctx.tenant, "limit_decisions", explicit.seq)
                if explicit is not None and source != "complement" else None))
    return BuyerLimitsOut(
        buyer_ref=buyer.ref, at=at, in_force=in_force,
        decisions=[limit_out(d, by_id, buyer.ref) for d in sorted(rows, key=lambda d: (by_id[d.policy_id].ref,
                                                                                      d.effective_from, d.id))],
    )


# --- country limits -------------------------------------------------------------------------------


def put_country_limit(ctx: Context, country: str, body: CountryLimitIn) -> tuple[CountryLimit, bool]:
    session = ctx.session
    policy_id = None
    if body.policy_ref is not None:
        policy_id = get_policy_for_field(ctx, body.policy_ref).id
    row = repo.country_limit(session, country)
    created = row is None
    if row is None:
        row = CountryLimit(country=country)
        session.add(row)
    row.amount, row.currency, row.policy_id = body.amount, body.currency, policy_id
    session.flush()
    alerts.reconcile_countries(ctx, [country])
    exposure.bump_version(ctx)
    return row, created


def get_policy_for_field(ctx: Context, ref: str) -> Policy:
    policy = repo.policy_by_ref(ctx.session, ref)
    if policy is None:
        raise Invalid(f"policy_ref: no policy '{ref}'.", field="/policy_ref")
    return policy


def country_limit_out(row: CountryLimit, refs_by_id: dict[int, str]) -> CountryLimitOut:
    return CountryLimitOut(country=row.country, amount=quantize(row.amount, row.currency), currency=row.currency,
                           policy_ref=refs_by_id.get(row.policy_id) if row.policy_id else None)


# --- FX -------------------------------------------------------------------------------------------


def put_rates(ctx: Context, rates: Sequence[FxRateIn]) -> tuple[int, Revaluation | None]:
    """Store rates, and revalue the buyers whose figures convert with a rate in force today that moved.

    The figures use, per pair, the latest rate on or before today: direct, inverted, or crossed through a common
    base (`engine.Rates`). A stored pair (base, quote) enters a conversion only if the conversion has its quote
    on one side (the pair itself, inverted, or crossed through its base), so only conversions from or into a moved
    quote currency can move. Invoices convert into their buyer's policy currency (or the tenant's), and limits and
    caps from a policy's: a moved quote that is a policy's or the tenant's currency moves everyone; any other,
    the buyers with open invoices in it. Returns how many rates were given, and the background revaluation if
    one was queued."""
    session = ctx.session
    before = repo.rates_on(session, ctx.today)
    latest: dict[tuple[str, str, date], Decimal] = {}
    for r in rates:
        if r.base == r.quote:
            raise Invalid("rates: base and quote must differ.", field="/rates")
        latest[(r.base, r.quote, r.date)] = r.rate
    existing = repo.existing_rates(session, list(latest))
    for key, rate in latest.items():
        row = existing.get(key)
        if row is None:
            session.add(FxRate(base=key[0], quote=key[1], day=key[2], rate=rate))
        elif row.rate != rate:
            row.rate = rate
    session.flush()
    after = repo.rates_on(session, ctx.today)
    moved = sorted(pair for pair in before.keys() | after.keys() if before.get(pair) != after.get(pair))
    if not moved:
        return len(latest), None
    quotes = {quote for _, quote in moved}
    cover_currencies = {p.currency for p in repo.policies(session)} | {ctx.tenant.currency}
    affected = EVERYONE if quotes & cover_currencies else Affected(currencies=frozenset(quotes))
    job = revaluation.revalue(ctx, affected, "FX rates " + ", ".join(f"{a}/{b}" for a, b in moved))
    # A country limit converted with a moved rate is held against the country's total anew, whoever moved.
    alerts.reconcile_countries(ctx, [c.country for c in repo.country_limits(session)
                                     if {c.currency, ctx.tenant.currency} & quotes])
    exposure.bump_version(ctx)  # the portfolio and country reads convert at today's rates
    return len(latest), job


def import_ecb_csv(ctx: Context, text: str) -> tuple[FxImportOut, Revaluation | None]:
    """The ECB euro reference rates file (eurofxref.csv / eurofxref-hist.csv): Date, then one column per currency."""
    reader = csv.reader(io.StringIO(text.lstrip("\ufeff")))
    header = next(reader, None)
    if not header or header[0].strip().lower() != "date":
        raise Invalid("The CSV must start with the ECB header: Date,USD,JPY,...", field="/csv/header")
    currencies = [c.strip() for c in header[1:]]
    for i, c in enumerate(currencies):
        if c and not is_known_currency(c):
            raise Invalid(f"column {i + 2}: '{c}' is not an ISO 4217 currency code.", field=f"/csv/header/{i + 1}")
    rates: list[FxRateIn] = []
    days: set[date] = set()
    for line, row in enumerate(reader, start=2):
        if not row or not row[0].strip():
            continue
        try:
            day = _ecb_date(row[0].strip())
        except ValueError as exc:
            raise Invalid(f"line {line}: '{row[0]}' is not a date.", field=f"/csv/{line}/0") from exc
        days.add(day)
        for i, cell in enumerate(row[1:]):
            cell = cell.strip()
            if i >= len(currencies) or not currencies[i] or cell in ("", "N/A"):
                continue
            where = f"/csv/{line}/{i + 1}"
            try:
                value = Decimal(cell)
            except InvalidOperation as exc:
                raise Invalid(f"line {line}, column {i + 2} ({currencies[i]}): '{cell}' is not a rate.",
                              field=where) from exc
            problem = rate_problem(value)
            if problem is not None:
                raise Invalid(f"line {line}, column {i + 2} ({currencies[i]}): '{cell}' {problem}.", field=where)
            rates.append(FxRateIn.model_construct(date=day, base="EUR", quote=currencies[i], rate=value))
    if not rates:
        raise Invalid("The CSV holds no rate.", field="/csv")
    stored, job = put_rates(ctx, rates)
    return FxImportOut(stored=stored, days=len(days), currencies=sorted({r.quote for r in rates})), job


def _ecb_date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        from datetime import datetime

        return datetime.strptime(text, "%d %B %Y").date()  # noqa: DTZ007 (a calendar date: "20 March 2026")
