"""policy reporting terms: premium rate, minimum premium, overdue declaration days

Revision ID: 7c1e0a9d5b21
Revises: 7e1c0a5f2b9d
Create Date: 2026-11-21 23:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import app.core.types

revision: str = '7c1e0a9d5b21'
down_revision: str | None = "7e1c0a5f2b9d"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('policies') as batch:
        batch.add_column(sa.Column('premium_rate', app.core.types.Fixed(scale=6, precision=12), nullable=True))
        batch.add_column(sa.Column('minimum_premium', app.core.types.Fixed(scale=4, precision=24), nullable=True))
        batch.add_column(sa.Column('overdue_declaration_days', sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('policies') as batch:
        batch.drop_column('overdue_declaration_days')
        batch.drop_column('minimum_premium')
        batch.drop_column('premium_rate')
