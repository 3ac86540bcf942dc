"""Policies, cover decisions, country limits and FX rates, and their translation for the engine.

Every change that moves cover refreshes the stored exposure in the same transaction.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from datetime import date
from decimal import Decimal, InvalidOperation

from app.alerts import service as alerts
from app.core.context import Context
from app.core.errors import Conflict, Invalid, NotFound
from app.core.money import fits_currency, is_known_currency, quantize
from app.cover import engine
from app.cover import repository as repo
from app.cover.inputs import engine_decisions, engine_policies
from app.cover.models import CountryLimit, FxRate, LimitDecision, Policy
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
)
from app.exposure import service as exposure
from app.ledger import repository as ledger_repo
from app.ledger.models import Buyer

_TOP_UP_ONLY = ("primary_policy_ref", "mode", "ratio", "per_buyer_cap", "countries")
_EXCESS_ONLY = ("aggregate_first_loss", "discretionary_limit_max")


# --- policies -------------------------------------------------------------------------------------


def put_policy(ctx: Context, ref: str, body: PolicyIn) -> tuple[Policy, bool]:
    session = ctx.session
    primary: Policy | None = None
    given = body.model_fields_set
    if body.kind == "top_up":
        for f in ("primary_policy_ref", "mode"):
            if getattr(body, f) is None:
                raise Invalid(f"{f}: required for a top_up policy.", field=f"/{f}")
        primary = repo.policy_by_ref(session, body.primary_policy_ref or "")
        if primary is None or primary.kind == "top_up" or primary.ref == ref:
            raise Invalid(f"primary_policy_ref: no primary policy '{body.primary_policy_ref}'.",
                          field="/primary_policy_ref")
        for f in _EXCESS_ONLY:
            if getattr(body, f) is not None:
                raise Invalid(f"{f}: only for an excess_of_loss policy.", field=f"/{f}")
    else:
        for f in _TOP_UP_ONLY:
            if f in given and getattr(body, f) not in (None, []):
                raise Invalid(f"{f}: only for a top_up policy.", field=f"/{f}")
        if body.kind == "excess_of_loss":
            for f in _EXCESS_ONLY:
                if getattr(body, f) is None:
                    raise Invalid(f"{f}: required for an excess_of_loss policy.", field=f"/{f}")
        elif any(getattr(body, f) is not None for f in _EXCESS_ONLY):
            f = next(f for f in _EXCESS_ONLY if getattr(body, f) is not None)
            raise Invalid(f"{f}: only for an excess_of_loss policy.", field=f"/{f}")

    policy = repo.policy_by_ref(session, ref)
    created = policy is None
    if policy is None:
        policy = Policy(ref=ref)
        session.add(policy)
    elif body.kind == "top_up" and policy.kind != "top_up":
        dependants = [p.ref for p in repo.policies(session) if p.primary_policy_id == policy.id]
        if dependants:
            raise Invalid(f"kind: Top Up policies {dependants} stand on this primary policy.", field="/kind")
    data = body.model_dump(exclude={"primary_policy_ref", "countries", "country_overrides"})
    for f, v in data.items():
        setattr(policy, f, v)
    policy.covered_countries = sorted(set(body.covered_countries))
    policy.excluded_countries = sorted(set(body.excluded_countries))
    policy.country_overrides = {k: v.model_dump(exclude_none=True) for k, v in sorted(body.country_overrides.items())}
    policy.primary_policy_id = primary.id if primary is not None else None
    policy.top_up_countries = sorted(set(body.countries))
    if body.kind == "top_up" and policy.ratio is None:
        policy.ratio = Decimal(1)
    session.flush()
    exposure.refresh_all(ctx)
    return policy, created


def get_policy(ctx: Context, ref: str) -> Policy:
    policy = repo.policy_by_ref(ctx.session, ref)
    if policy is None:
        raise NotFound(f"No policy '{ref}'.")
    return policy


def policy_out(policy: Policy, refs_by_id: dict[int, str]) -> PolicyOut:
    return PolicyOut(
        policy_ref=policy.ref, insurer=policy.insurer, kind=policy.kind,  # type: ignore[arg-type]
        currency=policy.currency, starts_on=policy.starts_on, ends_on=policy.ends_on,
        indemnity_rate=policy.indemnity_rate.normalize(), max_credit_period_days=policy.max_credit_period_days,
        claim_deadline_days=policy.claim_deadline_days, max_extension_days=policy.max_extension_days,
        covered_countries=policy.covered_countries, excluded_countries=policy.excluded_countries,
        country_overrides={k: CountryOverride(**v) for k, v in policy.country_overrides.items()},
        aggregate_first_loss=_money(policy.aggregate_first_loss, policy.currency),
        discretionary_limit_max=_money(policy.discretionary_limit_max, policy.currency),
        primary_policy_ref=refs_by_id.get(policy.primary_policy_id) if policy.primary_policy_id else None,
        mode=policy.mode, ratio=policy.ratio.normalize() if policy.ratio is not None else None,
        per_buyer_cap=_money(policy.per_buyer_cap, policy.currency), countries=policy.top_up_countries,
        premium_rate=policy.premium_rate.normalize() if policy.premium_rate is not None else None,
        minimum_premium=_money(policy.minimum_premium, policy.currency),
        overdue_declaration_days=policy.overdue_declaration_days,
    )


def _money(amount: Decimal | None, currency: str) -> Decimal | None:
    return None if amount is None else quantize(amount, currency)


# --- cover decisions ------------------------------------------------------------------------------


def add_limit(ctx: Context, policy_ref: str, body: LimitIn) -> LimitDecision:
    session = ctx.session
    policy = get_policy(ctx, policy_ref)
    buyer = ledger_repo.buyer_by_ref(session, body.buyer_ref, for_update=True)
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
        if policy.kind == "top_up":
            raise Invalid("source: a Top Up has no discretionary limits.", field="/source")
        ceiling = policy.discretionary_limit_max
        if ceiling is not None and amount > ceiling:
            raise Invalid(
                f"amount: above the policy's discretionary ceiling of {quantize(ceiling, policy.currency)} "
                f"{policy.currency}.",
                field="/amount",
            )
    if body.decision_ref and repo.decision_by_ref(session, policy.id, body.decision_ref) is not None:
        raise Conflict(f"decision_ref '{body.decision_ref}' is already recorded for policy '{policy.ref}'.")
    decision = LimitDecision(
        policy_id=policy.id, buyer_id=buyer.id, amount=amount, status=body.status,
        effective_from=body.effective_from, expires_on=body.expires_on, source=body.source,
        decision_ref=body.decision_ref, requested_amount=body.requested_amount,
        max_credit_period_days=body.max_credit_period_days,
    )
    before = exposure.stored_row(ctx, buyer.id)
    previous_limit = before.primary_limit if before is not None else None
    session.add(decision)
    session.flush()
    result = exposure.refresh_buyers(ctx, [buyer.id])[buyer.id]
    alerts.after_decision(ctx, buyer, result, body.status, previous_limit)
    return decision


def limit_out(d: LimitDecision, policies_by_id: dict[int, Policy], buyer_ref: str) -> LimitOut:
    p = policies_by_id[d.policy_id]
    return LimitOut(
        id=d.id, policy_ref=p.ref, buyer_ref=buyer_ref, currency=p.currency, amount=quantize(d.amount, p.currency),
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
    eps = {p.ref: p for p in engine_policies(policies)}
    in_force: list[LimitInForceOut] = []
    rates = engine.Rates(repo.rates_on(session, at))
    for p in policies:
        ep = eps[p.ref]
        if ep.is_primary:
            if not ep.in_territory(buyer.country):
                continue
            amount, d = engine.primary_limit(decisions, ep, at)
            in_force.append(LimitInForceOut(
                policy_ref=p.ref, layer="primary", currency=p.currency, amount=quantize(amount, p.currency),
                source=d.source if d else "none", decision_id=d.seq if d else None))
        elif ep.primary_ref in eps:
            if ep.countries and buyer.country not in ep.countries:
                continue
            amount, source = engine.top_up_limit(decisions, ep, eps[ep.primary_ref], at, p.currency, rates)
            explicit = engine.decision_in_force(decisions, p.ref, at)
            in_force.append(LimitInForceOut(
                policy_ref=p.ref, layer="top_up", currency=p.currency, amount=amount, source=source,
                decision_id=explicit.seq if explicit is not None and source != "complement" else None))
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


def put_rates(ctx: Context, rates: Sequence[FxRateIn]) -> int:
    session = ctx.session
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
    exposure.refresh_all(ctx)
    return len(latest)


def import_ecb_csv(ctx: Context, text: str) -> FxImportOut:
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
            try:
                value = Decimal(cell)
            except InvalidOperation as exc:
                raise Invalid(f"line {line}, {currencies[i]}: '{cell}' is not a rate.",
                              field=f"/csv/{line}/{i + 1}") from exc
            if value <= 0:
                raise Invalid(f"line {line}, {currencies[i]}: the rate must be above 0.", field=f"/csv/{line}/{i + 1}")
            rates.append(FxRateIn.model_construct(date=day, base="EUR", quote=currencies[i], rate=value))
    if not rates:
        raise Invalid("The CSV holds no rate.", field="/csv")
    stored = put_rates(ctx, rates)
    return FxImportOut(stored=stored, days=len(days), currencies=sorted({r.quote for r in rates}))


def _ecb_date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        from datetime import datetime

        return datetime.strptime(text, "%d %B %Y").date()  # noqa: DTZ007 (a calendar date: "20 March 2026")
