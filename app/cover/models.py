"""Policies, cover decisions, country limits and FX rates."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import JSON, Boolean, Date, ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from app.core.clock import utcnow
from app.core.db import Base, BigId, TenantScoped
from app.core.types import Money, Rate, Ratio, UtcDateTime


class Policy(TenantScoped, Base):
    """A policy's identity, and its terms as last written (their history, by effective date, is PolicyTerms)."""

    tenant_index = False  # an index of __table_args__ leads with tenant_id

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
    max_credit_period_days: Mapped[int | None] = mapped_column(Integer)
    claim_deadline_days: Mapped[int | None] = mapped_column(Integer)
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
    follows_discretionary: Mapped[bool] = mapped_column(Boolean, default=False)
    # Reports: the premium estimate on the declared turnover, and when an overdue invoice must be declared.
    premium_rate: Mapped[Decimal | None] = mapped_column(Ratio)
    minimum_premium: Mapped[Decimal | None] = mapped_column(Money)
    overdue_declaration_days: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow, onupdate=utcnow)


# The terms an endorsement can change (DOMAIN.md rule 8): versioned in PolicyTerms.
TERM_FIELDS = (
    "ends_on", "indemnity_rate", "max_credit_period_days", "claim_deadline_days", "max_extension_days",
    "covered_countries", "excluded_countries", "country_overrides", "aggregate_first_loss", "discretionary_limit_max",
    "ratio", "per_buyer_cap", "top_up_countries", "follows_discretionary",
)


class PolicyTerms(TenantScoped, Base):
    """One version of a policy's terms, in force from `effective_from` until the next version. History: an
    endorsement adds a version; a correction of the original terms replaces the first one."""

    __tablename__ = "policy_terms"
    __table_args__ = (UniqueConstraint("policy_id", "effective_from"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    policy_id: Mapped[int] = mapped_column(ForeignKey("policies.id", ondelete="CASCADE"))
    effective_from: Mapped[date] = mapped_column(Date)
    ends_on: Mapped[date] = mapped_column(Date)
    indemnity_rate: Mapped[Decimal] = mapped_column(Ratio)
    max_credit_period_days: Mapped[int | None] = mapped_column(Integer)
    claim_deadline_days: Mapped[int | None] = mapped_column(Integer)
    max_extension_days: Mapped[int | None] = mapped_column(Integer)
    covered_countries: Mapped[list[str]] = mapped_column(JSON, default=list)
    excluded_countries: Mapped[list[str]] = mapped_column(JSON, default=list)
    country_overrides: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    aggregate_first_loss: Mapped[Decimal | None] = mapped_column(Money)
    discretionary_limit_max: Mapped[Decimal | None] = mapped_column(Money)
    ratio: Mapped[Decimal | None] = mapped_column(Ratio)
    per_buyer_cap: Mapped[Decimal | None] = mapped_column(Money)
    top_up_countries: Mapped[list[str]] = mapped_column(JSON, default=list)
    follows_discretionary: Mapped[bool] = mapped_column(Boolean, default=False)
    recorded_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)


class StopOfCover(TenantScoped, Base):
    """A stop-of-cover period of one buyer under one primary policy (DOMAIN.md rule 7): deliveries strictly after
    `starts_on` and before `ends_on` (open-ended while the invoices that caused it are unpaid) stay uncovered."""

    tenant_index = False  # an index of __table_args__ leads with tenant_id

    __tablename__ = "stops_of_cover"
    __table_args__ = (
        UniqueConstraint("buyer_id", "policy_id", "starts_on"),
        # A walk reads its buyers' stops (tenant and buyers): without statistics SQLite preferred the tenant's index
        # to a list of buyers, reading every stop of the tenant.
        Index("ix_stops_of_cover_tenant_buyer", "tenant_id", "buyer_id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    buyer_id: Mapped[int] = mapped_column(ForeignKey("buyers.id", ondelete="CASCADE"))  # the unique key leads with it
    policy_id: Mapped[int] = mapped_column(ForeignKey("policies.id", ondelete="CASCADE"))
    starts_on: Mapped[date] = mapped_column(Date)
    ends_on: Mapped[date | None] = mapped_column(Date)
    invoice_refs: Mapped[list[str]] = mapped_column(JSON, default=list)
    recorded_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)


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
    tenant_index = False  # an index of __table_args__ leads with tenant_id

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

    tenant_index = False  # an index of __table_args__ leads with tenant_id

    __tablename__ = "fx_rates"
    __table_args__ = (
        UniqueConstraint("tenant_id", "base", "quote", "day"),
        # The same columns, named: SQLite's latest-rate lookup names its index (INDEXED BY), which a unique key's is
        # not there.
        Index("ix_fx_rates_lookup", "tenant_id", "base", "quote", "day"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    day: Mapped[date] = mapped_column(Date)
    base: Mapped[str] = mapped_column(String(3))
    quote: Mapped[str] = mapped_column(String(3))
    rate: Mapped[Decimal] = mapped_column(Rate)
