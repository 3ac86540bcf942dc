"""Stored exposure: one row per buyer, kept current by every change that moves cover."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import JSON, Date, ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from app.core.clock import utcnow
from app.core.db import Base, BigId, TenantScoped
from app.core.types import Money, Ratio, UtcDateTime


class BuyerExposure(TenantScoped, Base):
    __tablename__ = "buyer_exposures"
    __table_args__ = (
        UniqueConstraint("buyer_id"),
        Index("ix_buyer_exposures_tenant_ref", "tenant_id", "buyer_ref"),
        Index("ix_buyer_exposures_tenant_status", "tenant_id", "status"),
        Index("ix_buyer_exposures_tenant_country", "tenant_id", "country"),
        Index("ix_buyer_exposures_tenant_uncovered", "tenant_id", "uncovered"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    buyer_id: Mapped[int] = mapped_column(ForeignKey("buyers.id", ondelete="CASCADE"))
    buyer_ref: Mapped[str] = mapped_column(String(200))
    buyer_name: Mapped[str] = mapped_column(String(300))
    country: Mapped[str] = mapped_column(String(2))
    currency: Mapped[str] = mapped_column(String(3))
    valued_on: Mapped[date] = mapped_column(Date)
    outstanding: Mapped[Decimal] = mapped_column(Money)
    not_due: Mapped[Decimal] = mapped_column(Money)
    overdue_1_30: Mapped[Decimal] = mapped_column(Money)
    overdue_31_60: Mapped[Decimal] = mapped_column(Money)
    overdue_61_90: Mapped[Decimal] = mapped_column(Money)
    overdue_over_90: Mapped[Decimal] = mapped_column(Money)
    covered_primary: Mapped[Decimal] = mapped_column(Money)
    covered_top_up: Mapped[Decimal] = mapped_column(Money)
    uncovered: Mapped[Decimal] = mapped_column(Money)
    indemnifiable: Mapped[Decimal] = mapped_column(Money)
    primary_limit: Mapped[Decimal] = mapped_column(Money)
    top_up_limit: Mapped[Decimal] = mapped_column(Money)
    utilisation: Mapped[Decimal | None] = mapped_column(Ratio)
    status: Mapped[str] = mapped_column(String(20))
    error_count: Mapped[int] = mapped_column(Integer, default=0)
    errors: Mapped[list[str]] = mapped_column(JSON, default=list)
    detail: Mapped[dict[str, Any]] = mapped_column(JSON)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow, onupdate=utcnow)


class ExposureSnapshot(TenantScoped, Base):
    """A buyer's exposure at the end of one day's scan: history for reports and trends."""

    __tablename__ = "exposure_snapshots"
    __table_args__ = (
        UniqueConstraint("buyer_id", "day"),
        Index("ix_exposure_snapshots_tenant_day", "tenant_id", "day"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    buyer_id: Mapped[int] = mapped_column(ForeignKey("buyers.id", ondelete="CASCADE"))
    day: Mapped[date] = mapped_column(Date)
    currency: Mapped[str] = mapped_column(String(3))
    outstanding: Mapped[Decimal] = mapped_column(Money)
    overdue: Mapped[Decimal] = mapped_column(Money)
    covered_primary: Mapped[Decimal] = mapped_column(Money)
    covered_top_up: Mapped[Decimal] = mapped_column(Money)
    uncovered: Mapped[Decimal] = mapped_column(Money)
    indemnifiable: Mapped[Decimal] = mapped_column(Money)
    utilisation: Mapped[Decimal | None] = mapped_column(Ratio)
    status: Mapped[str] = mapped_column(String(20))


class ExposureTotal(TenantScoped, Base):
    """Sums of the stored buyer rows per (country, currency, status), kept by delta in the transaction of every
    refresh (under the country's lock), so that portfolio and country views read a handful of rows whatever the
    number of buyers. `check` compares them with the sums of the buyer rows."""

    __tablename__ = "exposure_totals"
    __table_args__ = (UniqueConstraint("tenant_id", "country", "currency", "status"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    country: Mapped[str] = mapped_column(String(2))
    currency: Mapped[str] = mapped_column(String(3))
    status: Mapped[str] = mapped_column(String(20))
    buyers: Mapped[int] = mapped_column(Integer, default=0)
    outstanding: Mapped[Decimal] = mapped_column(Money)
    not_due: Mapped[Decimal] = mapped_column(Money)
    overdue_1_30: Mapped[Decimal] = mapped_column(Money)
    overdue_31_60: Mapped[Decimal] = mapped_column(Money)
    overdue_61_90: Mapped[Decimal] = mapped_column(Money)
    overdue_over_90: Mapped[Decimal] = mapped_column(Money)
    covered_primary: Mapped[Decimal] = mapped_column(Money)
    covered_top_up: Mapped[Decimal] = mapped_column(Money)
    uncovered: Mapped[Decimal] = mapped_column(Money)
    indemnifiable: Mapped[Decimal] = mapped_column(Money)
