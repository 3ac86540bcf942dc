"""open invoices by currency (the buyers an FX rate can move); the portfolio's valuation date and errors by index

Revision ID: 5a7c3e1f9b20
Revises: 3f8a2c6d9e14
Create Date: 2026-11-22 03:10:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "5a7c3e1f9b20"
down_revision: str | None = "3f8a2c6d9e14"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OPEN = "kind = 'invoice' AND open_balance > 0"


def upgrade() -> None:
    op.create_index("ix_invoices_open_currency", "invoices", ["tenant_id", "currency", "buyer_id"], unique=False,
                    postgresql_where=sa.text(OPEN), sqlite_where=sa.text(OPEN))
    op.create_index("ix_buyer_exposures_tenant_valued_on", "buyer_exposures", ["tenant_id", "valued_on"])
    op.create_index("ix_buyer_exposures_errors", "buyer_exposures", ["tenant_id"],
                    postgresql_where=sa.text("error_count > 0"), sqlite_where=sa.text("error_count > 0"))


def downgrade() -> None:
    op.drop_index("ix_buyer_exposures_errors", table_name="buyer_exposures")
    op.drop_index("ix_buyer_exposures_tenant_valued_on", table_name="buyer_exposures")
    op.drop_index("ix_invoices_open_currency", table_name="invoices")
