"""Alerts credit managers act on, and the claims filed with the insurer."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import JSON, Date, ForeignKey, Index, String, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from app.core.clock import utcnow
from app.core.db import Base, BigId, TenantScoped
from app.core.types import UtcDateTime


class Alert(TenantScoped, Base):
    """One condition on one subject. At most one alert per (type, subject) is not resolved."""

    tenant_index = False  # an index of __table_args__ leads with tenant_id

    __tablename__ = "alerts"
    __table_args__ = (
        Index(
            "uq_alerts_one_open", "tenant_id", "type", "subject", unique=True,
            postgresql_where=text("state <> 'resolved'"), sqlite_where=text("state <> 'resolved'"),
        ),
        Index("ix_alerts_tenant_state", "tenant_id", "state", "opened_at"),
        Index("ix_alerts_buyer", "buyer_id", "state"),
        # A buyer's open alerts by type, and its invoices' ones by invoice: what a refresh settles.
        Index("ix_alerts_open_buyer", "tenant_id", "buyer_id", "type", "invoice_ref",
              postgresql_where=text("state <> 'resolved'"), sqlite_where=text("state <> 'resolved'")),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    type: Mapped[str] = mapped_column(String(40))
    subject: Mapped[str] = mapped_column(String(400))
    state: Mapped[str] = mapped_column(String(20), default="open")
    buyer_id: Mapped[int | None] = mapped_column(ForeignKey("buyers.id", ondelete="CASCADE"))
    buyer_ref: Mapped[str | None] = mapped_column(String(200))
    country: Mapped[str | None] = mapped_column(String(2))
    invoice_ref: Mapped[str | None] = mapped_column(String(200))
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    opened_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    opened_on: Mapped[date] = mapped_column(Date)
    acknowledged_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    resolved_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    resolution: Mapped[str | None] = mapped_column(String(20))  # cleared | manual
    # Who (the API key's name) acknowledged or resolved it by hand, and the note they left.
    acknowledged_by: Mapped[str | None] = mapped_column(String(250))
    acknowledged_note: Mapped[str | None] = mapped_column(String(2000))
    resolved_by: Mapped[str | None] = mapped_column(String(250))
    resolved_note: Mapped[str | None] = mapped_column(String(2000))


class Claim(TenantScoped, Base):
    __tablename__ = "claims"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    buyer_id: Mapped[int] = mapped_column(ForeignKey("buyers.id"), index=True)
    filed_on: Mapped[date] = mapped_column(Date)
    insurer_claim_ref: Mapped[str | None] = mapped_column(String(100))
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)


class ClaimInvoice(TenantScoped, Base):
    """An invoice declared in a claim: once claimed, its cover survives the claim deadline."""

    __tablename__ = "claim_invoices"
    __table_args__ = (UniqueConstraint("invoice_id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    claim_id: Mapped[int] = mapped_column(ForeignKey("claims.id", ondelete="CASCADE"), index=True)
    invoice_id: Mapped[int] = mapped_column(ForeignKey("invoices.id"))
    filed_on: Mapped[date] = mapped_column(Date)
