"""no index that another leads with: tenant_id alone, a stop's buyer

Revision ID: 8a2c4e6f1b93
Revises: 3c7d9e1f5a28
Create Date: 2026-12-03 21:30:00

Twelve tables had an index on `tenant_id` alone beside another that leads with it (a unique reference, a walk's
lookup), `stops_of_cover` one on `buyer_id`, which its unique key leads with. None served a lookup the other does
not, and every insert, and every update that cannot be made in place (an exposure row marked stale), kept them up
too. `TenantScoped.tenant_index` (app/core/db.py); tests/core/test_tenancy.py holds every table to it.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "8a2c4e6f1b93"
down_revision: str | None = "3c7d9e1f5a28"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLES = ("alerts", "buyer_exposures", "buyers", "country_limits", "exposure_snapshots", "exposure_totals", "fx_rates",
          "idempotency_records", "job_runs", "payments", "policies", "stops_of_cover")


def upgrade() -> None:
    for table in TABLES:
        op.drop_index(f"ix_{table}_tenant_id", table_name=table)
    op.drop_index("ix_stops_of_cover_buyer_id", table_name="stops_of_cover")


def downgrade() -> None:
    op.create_index("ix_stops_of_cover_buyer_id", "stops_of_cover", ["buyer_id"])
    for table in TABLES:
        op.create_index(f"ix_{table}_tenant_id", table, ["tenant_id"])
