"""exposure totals per country, currency and status, kept by delta

Revision ID: 3f8a2c6d9e14
Revises: 3f6b2d8e9a17
Create Date: 2026-11-22 03:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import app.core.types

revision: str = "3f8a2c6d9e14"
down_revision: str | None = "3f6b2d8e9a17"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SUMMED = ("outstanding", "not_due", "overdue_1_30", "overdue_31_60", "overdue_61_90", "overdue_over_90",
          "covered_primary", "covered_top_up", "uncovered", "indemnifiable")


def upgrade() -> None:
    op.create_table(
        "exposure_totals",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("country", sa.String(length=2), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("buyers", sa.Integer(), nullable=False),
        *[sa.Column(f, app.core.types.Fixed(scale=4, precision=24), nullable=False) for f in SUMMED],
        sa.Column("tenant_id", sa.String(length=36), nullable=False),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"], name=op.f("fk_exposure_totals_tenant_id_tenants"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_exposure_totals")),
        sa.UniqueConstraint("tenant_id", "country", "currency", "status",
                            name=op.f("uq_exposure_totals_tenant_id_country_currency_status")),
    )
    op.create_index(op.f("ix_exposure_totals_tenant_id"), "exposure_totals", ["tenant_id"], unique=False)
    # The totals of the rows already stored (both databases store Fixed so that sums add up exactly).
    columns = ", ".join(SUMMED)
    sums = ", ".join(f"sum({f})" for f in SUMMED)
    op.execute(f"INSERT INTO exposure_totals (tenant_id, country, currency, status, buyers, {columns}) "
               f"SELECT tenant_id, country, currency, status, count(*), {sums} FROM buyer_exposures "
               "GROUP BY tenant_id, country, currency, status")


def downgrade() -> None:
    op.drop_index(op.f("ix_exposure_totals_tenant_id"), table_name="exposure_totals")
    op.drop_table("exposure_totals")
