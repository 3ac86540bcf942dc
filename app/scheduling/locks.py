"""One runner at a time across replicas: a PostgreSQL advisory lock held for the job's whole run.

APScheduler 3 has no cross-process coordination, so each periodic job that must run
once takes `pg_try_advisory_lock` on a connection kept for the run, and skips when
another replica holds it. SQLite is one process: there the job simply runs.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import text

from app.core.db import Database


def lock_key(name: str) -> int:
    return int.from_bytes(hashlib.sha256(f"coverwatch:{name}".encode()).digest()[:8], "big", signed=True)


@contextmanager
def single_runner(db: Database, name: str) -> Iterator[bool]:
    """Yields True when this process holds the lock (run the job), False when another one does (skip)."""
    if db.dialect != "postgresql":
        yield True
        return
    key = lock_key(name)
    with db.engine.connect() as conn:
        got = bool(conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": key}).scalar())
        conn.commit()
        try:
            yield got
        finally:
            if got:
                conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": key})
                conn.commit()
