"""The receivables ledger: buyers, invoices and credit notes, payments, and allocations."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import Boolean, Date, ForeignKey, Index, Integer, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from app.core.clock import utcnow
from app.core.db import Base, BigId, TenantScoped
from app.core.types import Money, UtcDateTime


class Buyer(TenantScoped, Base):
    tenant_index = False  # an index of __table_args__ leads with tenant_id

    __tablename__ = "buyers"
    __table_args__ = (UniqueConstraint("tenant_id", "ref"), Index("ix_buyers_tenant_country", "tenant_id", "country"))

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    ref: Mapped[str] = mapped_column(String(200))
    name: Mapped[str] = mapped_column(String(300))
    country: Mapped[str] = mapped_column(String(2))
    registration_id: Mapped[str | None] = mapped_column(String(100))
    insurer_buyer_id: Mapped[str | None] = mapped_column(String(100))
    sector: Mapped[str | None] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow, onupdate=utcnow)


class Invoice(TenantScoped, Base):
    """An invoice or a credit note. `open_balance` is what is left: unpaid for an
    invoice, not yet applied for a credit note."""

    tenant_index = False  # an index of __table_args__ leads with tenant_id

    __tablename__ = "invoices"
    __table_args__ = (
        # Invoices and credit notes have their own numbering sequences: a number is unique per kind.
        UniqueConstraint("tenant_id", "kind", "ref"),
        Index("ix_invoices_buyer_open", "buyer_id", "kind", "open_balance"),
        Index("ix_invoices_tenant_due", "tenant_id", "due_date"),
        # The buyers an FX rate can move: those with open invoices in its currency (app/exposure/revaluation.py).
        Index("ix_invoices_open_currency", "tenant_id", "currency", "buyer_id",
              postgresql_where=text("kind = 'invoice' AND open_balance > 0"),
              sqlite_where=text("kind = 'invoice' AND open_balance > 0")),
        # A buyer's open invoices from a delivery date on: what an incremental walk re-reads (app/exposure).
        Index("ix_invoices_buyer_open_issue", "tenant_id", "buyer_id", "issue_date",
              postgresql_where=text("kind = 'invoice' AND open_balance > 0"),
              sqlite_where=text("kind = 'invoice' AND open_balance > 0")),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    ref: Mapped[str] = mapped_column(String(200))
    buyer_id: Mapped[int] = mapped_column(ForeignKey("buyers.id"))
    kind: Mapped[str] = mapped_column(String(16))
    currency: Mapped[str] = mapped_column(String(3))
    amount: Mapped[Decimal] = mapped_column(Money)
    issue_date: Mapped[date] = mapped_column(Date)
    due_date: Mapped[date] = mapped_column(Date)
    # The claim deadline runs from the original due date: a postponement never moves it.
    original_due_date: Mapped[date] = mapped_column(Date)
    applies_to: Mapped[str | None] = mapped_column(String(200))
    open_balance: Mapped[Decimal] = mapped_column(Money)
    # The day an invoice was paid or credited in full (the latest date among what settled it), None while open:
    # the history stop-of-cover periods are derived from (DOMAIN.md rule 7).
    settled_on: Mapped[date | None] = mapped_column(Date)
    revision: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow, onupdate=utcnow)


class InvoiceRevision(TenantScoped, Base):
    """A correction: the body an invoice had before it was changed."""

    __tablename__ = "invoice_revisions"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    invoice_id: Mapped[int] = mapped_column(ForeignKey("invoices.id", ondelete="CASCADE"), index=True)
    revision: Mapped[int] = mapped_column(Integer)
    previous: Mapped[str] = mapped_column(Text)
    recorded_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)


class Payment(TenantScoped, Base):
    tenant_index = False  # an index of __table_args__ leads with tenant_id

    __tablename__ = "payments"
    __table_args__ = (UniqueConstraint("tenant_id", "ref"), Index("ix_payments_buyer", "buyer_id", "unapplied"))

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    ref: Mapped[str] = mapped_column(String(200))
    buyer_id: Mapped[int] = mapped_column(ForeignKey("buyers.id"))
    currency: Mapped[str] = mapped_column(String(3))
    amount: Mapped[Decimal] = mapped_column(Money)
    received_on: Mapped[date] = mapped_column(Date)
    unapplied: Mapped[Decimal] = mapped_column(Money)
    body: Mapped[str] = mapped_column(Text)
    reversed_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow, onupdate=utcnow)


class Allocation(TenantScoped, Base):
    """Part of a payment or credit note applied to one invoice."""

    __tablename__ = "allocations"
    __table_args__ = (
        # Most allocations are payments': indexing only the credit notes' keeps SQLite's statistics of this index
        # true (with every NULL counted, it took a lookup by credit note for a scan of the table).
        Index("ix_allocations_credit_note_id", "credit_note_id", postgresql_where=text("credit_note_id IS NOT NULL"),
              sqlite_where=text("credit_note_id IS NOT NULL")),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    buyer_id: Mapped[int] = mapped_column(ForeignKey("buyers.id"), index=True)
    invoice_id: Mapped[int] = mapped_column(ForeignKey("invoices.id"), index=True)
    payment_id: Mapped[int | None] = mapped_column(ForeignKey("payments.id"), index=True)
    credit_note_id: Mapped[int | None] = mapped_column(ForeignKey("invoices.id"))
    amount: Mapped[Decimal] = mapped_column(Money)
    explicit: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
