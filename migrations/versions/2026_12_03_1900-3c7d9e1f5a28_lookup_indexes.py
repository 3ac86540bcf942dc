"""indexes a walk's lookups use whatever SQLite's statistics say

Revision ID: 3c7d9e1f5a28
Revises: 6e1f3a8b2d47
Create Date: 2026-12-03 19:00:00

`ix_allocations_credit_note_id` indexes only the allocations of credit notes (most are payments'): counted with
their NULLs, SQLite's statistics made a lookup by credit note a scan of the table. `ix_stops_of_cover_tenant_buyer`:
a walk's stops read by tenant and buyers, which SQLite without statistics read through the tenant's index.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "3c7d9e1f5a28"
down_revision: str | None = "6e1f3a8b2d47"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_CREDIT_NOTES = sa.text("credit_note_id IS NOT NULL")


def upgrade() -> None:
    op.drop_index("ix_allocations_credit_note_id", table_name="allocations")
    op.create_index("ix_allocations_credit_note_id", "allocations", ["credit_note_id"],
                    postgresql_where=_CREDIT_NOTES, sqlite_where=_CREDIT_NOTES)
    op.create_index("ix_stops_of_cover_tenant_buyer", "stops_of_cover", ["tenant_id", "buyer_id"])


def downgrade() -> None:
    op.drop_index("ix_stops_of_cover_tenant_buyer", table_name="stops_of_cover")
    op.drop_index("ix_allocations_credit_note_id", table_name="allocations")
    op.create_index("ix_allocations_credit_note_id", "allocations", ["credit_note_id"])
