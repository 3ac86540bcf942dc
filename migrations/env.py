"""Alembic environment: the app's metadata, the configured URL, batch mode on SQLite."""

from __future__ import annotations

from alembic import context
from sqlalchemy import pool

from app import models  # noqa: F401  (complete metadata)
from app.core.config import get_settings
from app.core.db import Base, make_engine

config = context.config
target_metadata = Base.metadata


def _url() -> str:
    return config.get_main_option("sqlalchemy.url") or get_settings().database_url


def run_migrations_offline() -> None:
    context.configure(url=_url(), target_metadata=target_metadata, literal_binds=True, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    engine = make_engine(_url(), poolclass=pool.NullPool)
    with engine.connect() as connection:
        if connection.dialect.name == "sqlite":
            # Batch mode rebuilds a table by copy, drop and rename: with foreign keys enforced, dropping a
            # referenced table would cascade to (or fail on) the rows that reference it. Off for this
            # connection, outside any transaction (SQLite ignores the pragma inside one).
            connection.connection.driver_connection.execute("PRAGMA foreign_keys=OFF")
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            render_as_batch=connection.dialect.name == "sqlite",
            compare_type=True,
        )
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
