"""Stored exposure: one row per buyer, kept current by every change that moves cover."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Date,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    false,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from app.core.clock import utcnow
from app.core.db import Base, BigId, TenantScoped
from app.core.types import Money, Ratio, UtcDateTime


class Amounts:
    """The amounts a buyer's stored row holds and the totals add up (`repository.SUMMED`)."""

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


class BuyerExposure(TenantScoped, Amounts, Base):
    tenant_index = False  # an index of __table_args__ leads with tenant_id

    __tablename__ = "buyer_exposures"
    __table_args__ = (
        UniqueConstraint("buyer_id"),
        Index("ix_buyer_exposures_tenant_ref", "tenant_id", "buyer_ref"),
        Index("ix_buyer_exposures_tenant_status", "tenant_id", "status"),
        Index("ix_buyer_exposures_tenant_country", "tenant_id", "country"),
        Index("ix_buyer_exposures_tenant_uncovered", "tenant_id", "uncovered"),
        # The work list of background revaluations: the few stale rows of a tenant, by buyer id.
        Index("ix_buyer_exposures_stale", "tenant_id", "buyer_id", postgresql_where=text("stale"),
              sqlite_where=text("stale = 1")),
        # The portfolio's valuation date and its errors, read by index whatever the number of buyers.
        Index("ix_buyer_exposures_tenant_valued_on", "tenant_id", "valued_on"),
        Index("ix_buyer_exposures_errors", "tenant_id", postgresql_where=text("error_count > 0"),
              sqlite_where=text("error_count > 0")),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    buyer_id: Mapped[int] = mapped_column(ForeignKey("buyers.id", ondelete="CASCADE"))
    buyer_ref: Mapped[str] = mapped_column(String(200))
    buyer_name: Mapped[str] = mapped_column(String(300))
    country: Mapped[str] = mapped_column(String(2))
    currency: Mapped[str] = mapped_column(String(3))
    valued_on: Mapped[date] = mapped_column(Date)
    primary_limit: Mapped[Decimal] = mapped_column(Money)
    top_up_limit: Mapped[Decimal] = mapped_column(Money)
    utilisation: Mapped[Decimal | None] = mapped_column(Ratio)
    status: Mapped[str] = mapped_column(String(20))
    error_count: Mapped[int] = mapped_column(Integer, default=0)
    errors: Mapped[list[str]] = mapped_column(JSON, default=list)
    detail: Mapped[dict[str, Any]] = mapped_column(JSON)
    # True from a tenant-wide change (policy, FX, settings) until a background revaluation re-evaluates the row
    # with the new inputs: until then the figures are those of `valued_on` under the previous inputs.
    stale: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow, onupdate=utcnow)


# Invoice references compare by code point in the walk (Python's order): on PostgreSQL the column says so ("C"
# collation); SQLite compares bytes of UTF-8 already, the same order.
WalkRef = String(200).with_variant(String(200, collation="C"), "postgresql")


class InvoiceCover(TenantScoped, Base):
    """One open invoice's cover, in its buyer's walk (delivery date, then reference: `seq` is its position).

    `state` is what the walk has consumed up to and including this invoice: each layer's covered amount by policy
    ref (`used`) and the unrounded indemnifiable amount (`indemnifiable`), as strings. A change delivered on day D
    re-walks only the buyer's invoices from D on, resuming from the state of the last invoice before D
    (app/exposure/service.py), so its cost does not grow with the buyer's older invoices.

    Derived rows, like a cache of the walk: `recompute` rebuilds them and `recompute --check` compares them with a
    walk from scratch. They carry no foreign key: a bulk load writes one per invoice, and the three checks per row
    (tenant, buyer, invoice) cost PostgreSQL 1.3 s of CPU per 100,000 rows, more than the table's five indexes
    (0.6 s); no invoice, buyer or tenant is ever deleted, and the walk writes a cover only for an invoice it read.
    No index on `tenant_id` alone either: the walk's index leads with it.
    """

    __tablename__ = "invoice_covers"
    __table_args__ = (
        Index("ix_invoice_covers_walk", "tenant_id", "buyer_id", "issue_date", "seq"),
        Index("ix_invoice_covers_invoice", "invoice_id"),
        Index("ix_invoice_covers_tenant_deadline", "tenant_id", "claim_deadline"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    tenant_id: Mapped[str] = mapped_column(String(36))
    buyer_id: Mapped[int] = mapped_column(BigId)
    invoice_id: Mapped[int] = mapped_column(BigId)
    seq: Mapped[int] = mapped_column(Integer)
    invoice_ref: Mapped[str] = mapped_column(WalkRef)
    issue_date: Mapped[date] = mapped_column(Date)
    due_date: Mapped[date] = mapped_column(Date)
    currency: Mapped[str] = mapped_column(String(3))  # the buyer's exposure currency
    open_balance: Mapped[Decimal] = mapped_column(Money)
    covered_primary: Mapped[Decimal] = mapped_column(Money)
    covered_top_up: Mapped[Decimal] = mapped_column(Money)
    uncovered: Mapped[Decimal] = mapped_column(Money)
    indemnifiable: Mapped[Decimal] = mapped_column(Money)
    reason: Mapped[str | None] = mapped_column(String(40))
    claim_deadline: Mapped[date | None] = mapped_column(Date)
    claim_filed_on: Mapped[date | None] = mapped_column(Date)
    original_currency: Mapped[str | None] = mapped_column(String(3))
    original_open_balance: Mapped[Decimal | None] = mapped_column(Money)
    primary_policy_ref: Mapped[str | None] = mapped_column(String(200))
    state: Mapped[dict[str, Any]] = mapped_column(JSON)


class ExposureSnapshot(TenantScoped, Base):
    """A buyer's exposure at the end of one day's scan: history for reports and trends."""

    tenant_index = False  # an index of __table_args__ leads with tenant_id

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


class ExposureTotal(TenantScoped, Amounts, Base):
    """Sums of the stored buyer rows per (country, currency, status), kept by delta in the transaction of every
    refresh (under the country's lock), so that portfolio and country views read a handful of rows whatever the
    number of buyers. `check` compares them with the sums of the buyer rows."""

    tenant_index = False  # an index of __table_args__ leads with tenant_id

    __tablename__ = "exposure_totals"
    __table_args__ = (UniqueConstraint("tenant_id", "country", "currency", "status"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    country: Mapped[str] = mapped_column(String(2))
    currency: Mapped[str] = mapped_column(String(3))
    status: Mapped[str] = mapped_column(String(20))
    buyers: Mapped[int] = mapped_column(Integer, default=0)


class Revaluation(TenantScoped, Base):
    """A background revaluation: the stale rows of a tenant re-evaluated chunk by chunk (app/exposure/revaluation.py).

    `cursor` is the last buyer id committed; `lease_until` says how long the runner that claimed it (`runner`)
    holds it: past it, any runner takes it over from the cursor. `snapshot_on`: a daily scan's walk, whose end
    takes that day's snapshot."""

    __tablename__ = "revaluations"
    __table_args__ = (Index("ix_revaluations_state_created", "state", "created_at"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    reason: Mapped[str] = mapped_column(String(500))
    state: Mapped[str] = mapped_column(String(10), default="queued")  # queued | running | done | failed
    total: Mapped[int] = mapped_column(Integer, default=0)
    done: Mapped[int] = mapped_column(Integer, default=0)
    cursor: Mapped[int] = mapped_column(BigInteger, default=0)
    error: Mapped[str | None] = mapped_column(Text)
    runner: Mapped[str | None] = mapped_column(String(36))
    lease_until: Mapped[datetime | None] = mapped_column(UtcDateTime())
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    heartbeat_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    # The daily scan's walk: the runner that finishes the job takes this day's exposure snapshot.
    snapshot_on: Mapped[date | None] = mapped_column(Date)
