"""invoice covers: each open invoice's cover in its own row, with the walk's state after it (incremental cover)

Also an index of each buyer's open invoices by delivery date (what an incremental walk re-reads) and one of its
open alerts by type and invoice (what a refresh settles).

Revision ID: c4e8a2f6d1b3
Revises: a7d3f1c9e2b4
Create Date: 2026-11-22 10:00:00

The per-invoice cover leaves the buyer rows' JSON (`detail["invoices"]`) for `invoice_covers`. Its walk state
cannot be read back from the JSON, so existing rows are marked stale and each tenant with rows gets a queued
background revaluation, which writes the new rows (`coverwatch worker`, `serve`'s scheduler, or
`coverwatch revaluations`). Until then dashboards read the buyer rows, marked stale.
"""

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

from app.core.types import Money, UtcDateTime

revision: str = "c4e8a2f6d1b3"
down_revision: str | None = "a7d3f1c9e2b4"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

WalkRef = sa.String(200).with_variant(sa.String(200, collation="C"), "postgresql")


def upgrade() -> None:
    op.create_table(
        "invoice_covers",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True),
        sa.Column("tenant_id", sa.String(36), sa.ForeignKey("tenants.id", ondelete="CASCADE"), nullable=False),
        sa.Column("buyer_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
                  sa.ForeignKey("buyers.id", ondelete="CASCADE"), nullable=False),
        sa.Column("invoice_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
                  sa.ForeignKey("invoices.id", ondelete="CASCADE"), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("invoice_ref", WalkRef, nullable=False),
        sa.Column("issue_date", sa.Date(), nullable=False),
        sa.Column("due_date", sa.Date(), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("open_balance", Money, nullable=False),
        sa.Column("covered_primary", Money, nullable=False),
        sa.Column("covered_top_up", Money, nullable=False),
        sa.Column("uncovered", Money, nullable=False),
        sa.Column("indemnifiable", Money, nullable=False),
        sa.Column("reason", sa.String(40), nullable=True),
        sa.Column("claim_deadline", sa.Date(), nullable=True),
        sa.Column("claim_filed_on", sa.Date(), nullable=True),
        sa.Column("original_currency", sa.String(3), nullable=True),
        sa.Column("original_open_balance", Money, nullable=True),
        sa.Column("primary_policy_ref", sa.String(100), nullable=True),
        sa.Column("state", sa.JSON(), nullable=False),
    )
    op.create_index("ix_invoice_covers_tenant_id", "invoice_covers", ["tenant_id"])
    op.create_index("ix_invoice_covers_walk", "invoice_covers", ["tenant_id", "buyer_id", "issue_date", "seq"])
    op.create_index("ix_invoice_covers_invoice", "invoice_covers", ["invoice_id"])
    op.create_index("ix_invoice_covers_tenant_deadline", "invoice_covers", ["tenant_id", "claim_deadline"])
    op.create_index("ix_alerts_open_buyer", "alerts", ["tenant_id", "buyer_id", "type", "invoice_ref"],
                    postgresql_where=sa.text("state <> 'resolved'"), sqlite_where=sa.text("state <> 'resolved'"))
    op.create_index("ix_invoices_buyer_open_issue", "invoices", ["tenant_id", "buyer_id", "issue_date"],
                    postgresql_where=sa.text("kind = 'invoice' AND open_balance > 0"),
                    sqlite_where=sa.text("kind = 'invoice' AND open_balance > 0"))

    conn = op.get_bind()
    tenants = [t for (t,) in conn.execute(sa.text("SELECT DISTINCT tenant_id FROM buyer_exposures")).all()]
    if not tenants:
        return
    conn.execute(sa.text("UPDATE buyer_exposures SET stale = :yes"), {"yes": True})
    revaluations = sa.table(
        "revaluations", sa.column("id", sa.String), sa.column("tenant_id", sa.String), sa.column("reason", sa.String),
        sa.column("state", sa.String), sa.column("total", sa.Integer), sa.column("done", sa.Integer),
        sa.column("cursor", sa.BigInteger), sa.column("created_at", UtcDateTime()))
    now = datetime.now(UTC)
    conn.execute(sa.insert(revaluations), [
        {"id": str(uuid.uuid4()), "tenant_id": t, "reason": "upgrade: per-invoice cover in its own table",
         "state": "queued", "total": 0, "done": 0, "cursor": 0, "created_at": now} for t in tenants])


def downgrade() -> None:
    op.drop_index("ix_invoices_buyer_open_issue", table_name="invoices")
    op.drop_index("ix_alerts_open_buyer", table_name="alerts")
    op.drop_index("ix_invoice_covers_tenant_deadline", table_name="invoice_covers")
    op.drop_index("ix_invoice_covers_invoice", table_name="invoice_covers")
    op.drop_index("ix_invoice_covers_walk", table_name="invoice_covers")
    op.drop_index("ix_invoice_covers_tenant_id", table_name="invoice_covers")
    op.drop_table("invoice_covers")
