"""Who runs a job for a tenant, across replicas: a transaction-level PostgreSQL advisory lock.

Each periodic job works tenant by tenant, each tenant in its own transaction. That transaction first takes
`pg_try_advisory_xact_lock(job, tenant)`: a replica that finds it taken skips that tenant (another replica is on
it) and goes on with the next, so several replicas share the tenants instead of one doing them all. The lock
is released by the commit or rollback itself: nothing outlives the transaction, so it holds behind a
transaction-pooling PgBouncer too, and a crashed runner never leaves a tenant locked. The jobs re-check their
idempotency marks after taking the lock (a tenant finished by another replica a moment ago is not redone).
SQLite is one process (writes serialised by its write lock): there the job simply runs.
"""

from __future__ import annotations

import hashlib

from sqlalchemy import text
from sqlalchemy.orm import Session


def lock_key(name: str) -> int:
    return int.from_bytes(hashlib.sha256(f"coverwatch:{name}".encode()).digest()[:8], "big", signed=True)


def tenant_lock_key(job: str, tenant_id: str) -> int:
    return lock_key(f"{job}:{tenant_id}")


def try_tenant_lock(session: Session, job: str, tenant_id: str) -> bool:
    """True when this transaction now holds (job, tenant); False when another runner does (skip the tenant)."""
    if session.get_bind().dialect.name != "postgresql":
        return True
    return bool(session.execute(text("SELECT pg_try_advisory_xact_lock(:k)"),
                                {"k": tenant_lock_key(job, tenant_id)}).scalar())
