"""Translating stored policies, decisions and rates into the engine's inputs."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from sqlalchemy.orm import Session

from app.cover import engine
from app.cover import repository as repo
from app.cover.models import LimitDecision, Policy, PolicyTerms


def _terms(t: PolicyTerms | Policy, effective_from: date) -> engine.Terms:
    return engine.Terms(
        effective_from=effective_from, ends_on=t.ends_on, indemnity_rate=t.indemnity_rate,
        max_credit_period_days=t.max_credit_period_days if t.max_credit_period_days is not None else 365,
        claim_deadline_days=t.claim_deadline_days if t.claim_deadline_days is not None else 60,
        max_extension_days=t.max_extension_days, covered_countries=frozenset(t.covered_countries),
        excluded_countries=frozenset(t.excluded_countries),
        country_rules={k: engine.CountryRule(**v) for k, v in t.country_overrides.items()},
        ratio=t.ratio if t.ratio is not None else Decimal(1), per_buyer_cap=t.per_buyer_cap,
        countries=frozenset(t.top_up_countries), follows_discretionary=bool(t.follows_discretionary),
    )


def engine_policies(policies: Sequence[Policy], terms: Iterable[PolicyTerms] = ()) -> list[engine.Policy]:
    """Policies with their versions of terms: the first version is the original terms, the others endorsements.
    (A policy without stored versions, only in tests of old data, uses the terms on its row.)"""
    refs = {p.id: p.ref for p in policies}
    versions: dict[int, list[PolicyTerms]] = {}
    for t in sorted(terms, key=lambda t: t.effective_from):
        versions.setdefault(t.policy_id, []).append(t)
    out = []
    for p in policies:
        mine = versions.get(p.id) or []
        first = _terms(mine[0] if mine else p, p.starts_on)
        out.append(engine.Policy(
            ref=p.ref, kind=p.kind, currency=p.currency, starts_on=p.starts_on, ends_on=first.ends_on,
            indemnity_rate=first.indemnity_rate, max_credit_period_days=first.max_credit_period_days,
            claim_deadline_days=first.claim_deadline_days, max_extension_days=first.max_extension_days,
            covered_countries=first.covered_countries, excluded_countries=first.excluded_countries,
            country_rules=first.country_rules,
            primary_ref=refs.get(p.primary_policy_id) if p.primary_policy_id else None, mode=p.mode,
            ratio=first.ratio, per_buyer_cap=first.per_buyer_cap, countries=first.countries,
            follows_discretionary=first.follows_discretionary,
            endorsements=tuple(_terms(t, t.effective_from) for t in mine[1:]),
        ))
    return out


def engine_decisions(rows: Iterable[LimitDecision], refs_by_id: dict[int, str]) -> list[engine.Decision]:
    """`seq` is the decision's id: among decisions effective the same day, the later-recorded one wins."""
    return [
        engine.Decision(
            policy_ref=refs_by_id[d.policy_id], amount=d.amount, status=d.status, effective_from=d.effective_from,
            seq=d.id, expires_on=d.expires_on, source=d.source, max_credit_period_days=d.max_credit_period_days,
        )
        for d in rows
    ]


@dataclass
class CoverInputs:
    """What every buyer of a tenant shares for one valuation: policies and FX rates."""

    policies: list[engine.Policy]
    refs_by_id: dict[int, str]
    rates: engine.Rates
    valued_on: date

    @classmethod
    def load(cls, session: Session, valued_on: date) -> CoverInputs:
        rows = repo.policies(session)
        return cls(engine_policies(rows, repo.terms_of(session)), {p.id: p.ref for p in rows},
                   engine.Rates(repo.rates_on(session, valued_on)), valued_on)

    @property
    def ids_by_ref(self) -> dict[str, int]:
        return {ref: i for i, ref in self.refs_by_id.items()}
