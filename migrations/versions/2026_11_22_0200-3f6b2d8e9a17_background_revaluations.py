"""background revaluations: the revaluations table and the stale flag of stored exposure

Revision ID: 3f6b2d8e9a17
Revises: 7c1e0a9d5b21
Create Date: 2026-11-22 02:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import app.core.types

revision: str = '3f6b2d8e9a17'
down_revision: str | None = "7c1e0a9d5b21"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('buyer_exposures') as batch:
        batch.add_column(sa.Column('stale', sa.Boolean(), server_default=sa.false(), nullable=False))
    op.create_index('ix_buyer_exposures_stale', 'buyer_exposures', ['tenant_id', 'buyer_id'], unique=False,
                    postgresql_where=sa.text('stale'), sqlite_where=sa.text('stale = 1'))
    op.create_table(
        'revaluations',
        sa.Column('id', sa.String(length=36), nullable=False),
        sa.Column('reason', sa.String(length=500), nullable=False),
        sa.Column('state', sa.String(length=10), nullable=False),
        sa.Column('total', sa.Integer(), nullable=False),
        sa.Column('done', sa.Integer(), nullable=False),
        sa.Column('cursor', sa.BigInteger(), nullable=False),
        sa.Column('error', sa.Text(), nullable=True),
        sa.Column('runner', sa.String(length=36), nullable=True),
        sa.Column('lease_until', app.core.types.UtcDateTime(), nullable=True),
        sa.Column('created_at', app.core.types.UtcDateTime(), nullable=False),
        sa.Column('started_at', app.core.types.UtcDateTime(), nullable=True),
        sa.Column('heartbeat_at', app.core.types.UtcDateTime(), nullable=True),
        sa.Column('finished_at', app.core.types.UtcDateTime(), nullable=True),
        sa.Column('tenant_id', sa.String(length=36), nullable=False),
        sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], name=op.f('fk_revaluations_tenant_id_tenants'),
                                ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_revaluations')),
    )
    op.create_index('ix_revaluations_state_created', 'revaluations', ['state', 'created_at'], unique=False)
    op.create_index(op.f('ix_revaluations_tenant_id'), 'revaluations', ['tenant_id'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_revaluations_tenant_id'), table_name='revaluations')
    op.drop_index('ix_revaluations_state_created', table_name='revaluations')
    op.drop_table('revaluations')
    op.drop_index('ix_buyer_exposures_stale', table_name='buyer_exposures')
    with op.batch_alter_table('buyer_exposures') as batch:
        batch.drop_column('stale')
