"""console: who acknowledged or resolved an alert, with a note; the tenant's display locale

Revision ID: c0a5e1e7d9b2
Revises: 89133702b677
Create Date: 2026-11-21 23:10:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = 'c0a5e1e7d9b2'
down_revision: str | None = '89133702b677'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('alerts') as batch:
        batch.add_column(sa.Column('acknowledged_by', sa.String(length=250), nullable=True))
        batch.add_column(sa.Column('acknowledged_note', sa.String(length=2000), nullable=True))
        batch.add_column(sa.Column('resolved_by', sa.String(length=250), nullable=True))
        batch.add_column(sa.Column('resolved_note', sa.String(length=2000), nullable=True))
    with op.batch_alter_table('tenants') as batch:
        batch.add_column(sa.Column('locale', sa.String(length=35), nullable=False, server_default='fr-FR'))


def downgrade() -> None:
    with op.batch_alter_table('tenants') as batch:
        batch.drop_column('locale')
    with op.batch_alter_table('alerts') as batch:
        batch.drop_column('resolved_note')
        batch.drop_column('resolved_by')
        batch.drop_column('acknowledged_note')
        batch.drop_column('acknowledged_by')
