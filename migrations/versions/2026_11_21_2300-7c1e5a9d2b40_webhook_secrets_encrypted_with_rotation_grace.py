"""webhook secrets encrypted at rest, with the previous secret kept for a rotation grace period

Revision ID: 7c1e5a9d2b40
Revises: c0a5e1e7d9b2
Create Date: 2026-11-21 23:00:00

Existing plaintext secrets are encrypted here with COVERWATCH_SECRET_KEY (app/webhooks/crypto.py: the
development key on SQLite when unset; any other database with rows to encrypt needs the key set).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '7c1e5a9d2b40'
down_revision: str | None = 'c0a5e1e7d9b2'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _keys() -> tuple[str, ...]:
    from app.core.config import Settings
    from app.webhooks.crypto import resolve_keys

    settings = Settings()
    raw = settings.secret_key.get_secret_value() if settings.secret_key is not None else None
    dialect = op.get_bind().dialect.name
    return resolve_keys(raw, "sqlite://" if dialect == "sqlite" else dialect)


def upgrade() -> None:
    with op.batch_alter_table('webhook_endpoints', schema=None) as batch_op:
        batch_op.add_column(sa.Column('secret_encrypted', sa.Text(), nullable=True))
        batch_op.add_column(sa.Column('previous_secret_encrypted', sa.Text(), nullable=True))
        batch_op.add_column(sa.Column('previous_secret_until', sa.DateTime(timezone=True), nullable=True))

    bind = op.get_bind()
    rows = bind.execute(sa.text("SELECT id, secret FROM webhook_endpoints")).all()
    if rows:
        from app.webhooks.crypto import encrypt_with

        keys = _keys()
        for id_, secret in rows:
            bind.execute(sa.text("UPDATE webhook_endpoints SET secret_encrypted = :enc WHERE id = :id"),
                         {"enc": encrypt_with(keys, secret), "id": id_})

    with op.batch_alter_table('webhook_endpoints', schema=None) as batch_op:
        batch_op.alter_column('secret_encrypted', existing_type=sa.Text(), nullable=False)
        batch_op.drop_column('secret')


def downgrade() -> None:
    with op.batch_alter_table('webhook_endpoints', schema=None) as batch_op:
        batch_op.add_column(sa.Column('secret', sa.String(length=100), nullable=True))

    bind = op.get_bind()
    rows = bind.execute(sa.text("SELECT id, secret_encrypted FROM webhook_endpoints")).all()
    if rows:
        from app.webhooks.crypto import decrypt_with

        keys = _keys()
        for id_, token in rows:
            bind.execute(sa.text("UPDATE webhook_endpoints SET secret = :secret WHERE id = :id"),
                         {"secret": decrypt_with(keys, token), "id": id_})

    with op.batch_alter_table('webhook_endpoints', schema=None) as batch_op:
        batch_op.alter_column('secret', existing_type=sa.String(length=100), nullable=False)
        batch_op.drop_column('previous_secret_until')
        batch_op.drop_column('previous_secret_encrypted')
        batch_op.drop_column('secret_encrypted')
