"""Policies, cover decisions, country limits and FX rates."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import JSON, Date, ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from app.core.clock import utcnow
from app.core.db import Base, BigId, TenantScoped
from app.core.types import Money, Rate, Ratio, UtcDateTime


class Policy(TenantScoped, Base):
    __tablename__ = "policies"
    __table_args__ = (UniqueConstraint("tenant_id", "ref"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    ref: Mapped[str] = mapped_column(String(100))
    insurer: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(20))
    currency: Mapped[str] = mapped_column(String(3))
    starts_on: Mapped[date] = mapped_column(Date)
    ends_on: Mapped[date] = mapped_column(Date)
    indemnity_rate: Mapped[Decimal] = mapped_column(Ratio)
    max_credit_period_days: Mapped[int] = mapped_column(Integer)
    claim_deadline_days: Mapped[int] = mapped_column(Integer)
    max_extension_days: Mapped[int | None] = mapped_column(Integer)
    covered_countries: Mapped[list[str]] = mapped_column(JSON, default=list)
    excluded_countries: Mapped[list[str]] = mapped_column(JSON, default=list)
    country_overrides: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    aggregate_first_loss: Mapped[Decimal | None] = mapped_column(Money)
    discretionary_limit_max: Mapped[Decimal | None] = mapped_column(Money)
    primary_policy_id: Mapped[int | None] = mapped_column(ForeignKey("policies.id"))
    mode: Mapped[str | None] = mapped_column(String(20))
    ratio: Mapped[Decimal | None] = mapped_column(Ratio)
    per_buyer_cap: Mapped[Decimal | None] = mapped_column(Money)
    top_up_countries: Mapped[list[str]] = mapped_column(JSON, default=list)
    # Reports: the premium estimate on the declared turnover, and when an overdue invoice must be declared.
    premium_rate: Mapped[Decimal | None] = mapped_column(Ratio)
    minimum_premium: Mapped[Decimal | None] = mapped_column(Money)
    overdue_declaration_days: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow, onupdate=utcnow)


class LimitDecision(TenantScoped, Base):
    """A cover decision. History: never updated, never deleted."""

    __tablename__ = "limit_decisions"
    __table_args__ = (
        Index("ix_limit_decisions_buyer", "buyer_id", "policy_id", "effective_from"),
        UniqueConstraint("policy_id", "decision_ref"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    policy_id: Mapped[int] = mapped_column(ForeignKey("policies.id"))
    buyer_id: Mapped[int] = mapped_column(ForeignKey("buyers.id"))
    amount: Mapped[Decimal] = mapped_column(Money)
    status: Mapped[str] = mapped_column(String(20))
    effective_from: Mapped[date] = mapped_column(Date)
    expires_on: Mapped[date | None] = mapped_column(Date)
    source: Mapped[str] = mapped_column(String(20))
    decision_ref: Mapped[str | None] = mapped_column(String(100))
    requested_amount: Mapped[Decimal | None] = mapped_column(Money)
    max_credit_period_days: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)


class CountryLimit(TenantScoped, Base):
    __tablename__ = "country_limits"
    __table_args__ = (UniqueConstraint("tenant_id", "country"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    country: Mapped[str] = mapped_column(String(2))
    amount: Mapped[Decimal] = mapped_column(Money)
    currency: Mapped[str] = mapped_column(String(3))
    policy_id: Mapped[int | None] = mapped_column(ForeignKey("policies.id"))
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow, onupdate=utcnow)


class FxRate(TenantScoped, Base):
    """One unit of `base` is worth `rate` units of `quote` on `day` (ECB: base EUR)."""

    __tablename__ = "fx_rates"
    __table_args__ = (
        UniqueConstraint("tenant_id", "base", "quote", "day"),
        Index("ix_fx_rates_lookup", "tenant_id", "base", "quote", "day"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    day: Mapped[date] = mapped_column(Date)
    base: Mapped[str] = mapped_column(String(3))
    quote: Mapped[str] = mapped_column(String(3))
    rate: Mapped[Decimal] = mapped_column(Rate)
