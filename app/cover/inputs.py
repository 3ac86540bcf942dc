"""Translating stored policies, decisions and rates into the engine's inputs."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from sqlalchemy.orm import Session

from app.cover import engine
from app.cover import repository as repo
from app.cover.models import LimitDecision, Policy


def engine_policies(policies: Sequence[Policy]) -> list[engine.Policy]:
    refs = {p.id: p.ref for p in policies}
    return [
        engine.Policy(
            ref=p.ref, kind=p.kind, currency=p.currency, starts_on=p.starts_on, ends_on=p.ends_on,
            indemnity_rate=p.indemnity_rate, max_credit_period_days=p.max_credit_period_days,
            claim_deadline_days=p.claim_deadline_days, max_extension_days=p.max_extension_days,
            covered_countries=frozenset(p.covered_countries), excluded_countries=frozenset(p.excluded_countries),
            country_rules={k: engine.CountryRule(**v) for k, v in p.country_overrides.items()},
            primary_ref=refs.get(p.primary_policy_id) if p.primary_policy_id else None, mode=p.mode,
            ratio=p.ratio if p.ratio is not None else Decimal(1), per_buyer_cap=p.per_buyer_cap,
            countries=frozenset(p.top_up_countries),
        )
        for p in policies
    ]


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
        return cls(engine_policies(rows), {p.id: p.ref for p in rows},
                   engine.Rates(repo.rates_on(session, valued_on)), valued_on)
