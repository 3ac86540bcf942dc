"""public id keys: each tenant's secret for the public ids of its alerts, claims, decisions and deliveries

Revision ID: a7d3f1c9e2b4
Revises: 5a7c3e1f9b20
Create Date: 2026-11-22 02:15:00

Existing tenants get a random key: their ids change once (from the database ids to their permutation), which is the
point; stored webhook payloads and earlier exports keep the numbers they were sent with.
"""

import secrets
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "a7d3f1c9e2b4"
down_revision: str | None = "5a7c3e1f9b20"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("tenants") as batch:
        batch.add_column(sa.Column("public_id_key", sa.String(length=64), nullable=True))
    conn = op.get_bind()
    for (tenant_id,) in conn.execute(sa.text("SELECT id FROM tenants")).all():
        conn.execute(sa.text("UPDATE tenants SET public_id_key = :key WHERE id = :id"),
                     {"key": secrets.token_hex(32), "id": tenant_id})
    with op.batch_alter_table("tenants") as batch:
        batch.alter_column("public_id_key", existing_type=sa.String(length=64), nullable=False)


def downgrade() -> None:
    with op.batch_alter_table("tenants") as batch:
        batch.drop_column("public_id_key")
