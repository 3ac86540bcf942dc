"""Idempotency-Key for POST: a replay with the same key and body returns the first response.

The first response is stored in the same transaction as the write it reports,
so a replay can never see a response whose write was lost. The same key with
another body is a 422. Records are kept at least `idempotency_ttl_hours`.

Two requests with one key at the same instant: exactly one runs. On PostgreSQL the request's transaction
first takes a transaction-level advisory lock on (tenant, key), before it looks for a stored response; a twin
that finds the lock taken answers 409 "in progress" (Retry-After) and runs nothing, and one that comes after
the commit finds the stored response and replays it. The lock goes with the transaction's commit or rollback,
or with its connection when the process dies: no pending marker outlives a crash, so a retry after one runs
at once. (A rolled-back first request leaves nothing behind either: a twin then executes, once.) SQLite needs
no lock: a writing transaction holds the database's write lock from its first statement (`BEGIN IMMEDIATE`),
so the twin starts after the first committed and replays it.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timedelta
from typing import Annotated, Any, cast

from fastapi import Depends, Request
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse, Response
from sqlalchemy import CursorResult, Integer, String, Text, UniqueConstraint, delete, select, text
from sqlalchemy.orm import Mapped, Session, mapped_column

from app.core.clock import utcnow
from app.core.db import Base, BigId, SessionDep, TenantScoped
from app.core.errors import Conflict, Invalid
from app.core.security import Principal, authenticate
from app.core.types import UtcDateTime


class IdempotencyRecord(TenantScoped, Base):
    tenant_index = False  # an index of __table_args__ leads with tenant_id

    __tablename__ = "idempotency_records"
    __table_args__ = (UniqueConstraint("tenant_id", "key"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    key: Mapped[str] = mapped_column(String(255))
    fingerprint: Mapped[str] = mapped_column(String(64))
    status_code: Mapped[int] = mapped_column(Integer)
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow, index=True)


class Idempotency:
    def __init__(self, session: Session, key: str | None, fingerprint: str) -> None:
        self.session = session
        self.key = key
        self.fingerprint = fingerprint

    def replay(self) -> Response | None:
        """The stored response for this key, or None when the request is new (or has no key)."""
        if self.key is None:
            return None
        record = self.session.scalars(select(IdempotencyRecord).where(IdempotencyRecord.key == self.key)).first()
        if record is None:
            return None
        if record.fingerprint != self.fingerprint:
            raise Invalid(
                "Idempotency-Key was already used with another request body.", field="/headers/Idempotency-Key"
            )
        return Response(
            record.body,
            status_code=record.status_code,
            media_type="application/json",
            headers={"Idempotent-Replayed": "true"},
        )

    def respond(self, status_code: int, payload: Any, *, replay_as: Any = None) -> JSONResponse:
        """Render the response and, with a key, store it in the request's transaction.

        `replay_as` is what a replay gets instead, for responses that carry a secret shown once.
        """
        content = jsonable_encoder(payload)
        if self.key is not None:
            stored = content if replay_as is None else jsonable_encoder(replay_as)
            self.session.add(
                IdempotencyRecord(
                    key=self.key,
                    fingerprint=self.fingerprint,
                    status_code=status_code,
                    body=json.dumps(stored, separators=(",", ":")),
                )
            )
        return JSONResponse(content, status_code=status_code)


class InProgress(Conflict):
    """409: a request with this Idempotency-Key is running now; its answer can be replayed once it is done."""

    type = "idempotency-in-progress"
    title = "Request in progress"


def lock_key(tenant_id: str, key: str) -> int:
    """The advisory lock of (tenant, key): 64 bits of a hash, in a namespace of its own."""
    digest = hashlib.sha256(f"coverwatch:idempotency:{tenant_id}:{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def _claim(session: Session, tenant_id: str, key: str) -> None:
    """Hold (tenant, key) for this transaction, or answer 409 when a twin request holds it (module docstring)."""
    if session.get_bind().dialect.name != "postgresql":
        return
    if not session.execute(text("SELECT pg_try_advisory_xact_lock(:k)"), {"k": lock_key(tenant_id, key)}).scalar():
        raise InProgress(
            "A request with this Idempotency-Key is in progress; retry it to get its response.",
            field="/headers/Idempotency-Key", headers={"Retry-After": "1"},
        )


async def _raw_body(request: Request) -> bytes:
    return await request.body()


RawBody = Annotated[bytes, Depends(_raw_body)]


def idempotency(
    request: Request,
    session: SessionDep,
    principal: Annotated[Principal, Depends(authenticate)],
    body: RawBody,
) -> Idempotency:
    key = request.headers.get("idempotency-key")
    if key is not None and not (1 <= len(key) <= 255):
        raise Invalid("Idempotency-Key must be 1 to 255 characters.", field="/headers/Idempotency-Key")
    digest = hashlib.sha256()
    digest.update(request.method.encode() + b" " + request.url.path.encode() + b"\n")
    digest.update(body)
    if key is not None:
        _claim(session, principal.tenant.id, key)
    return Idempotency(session, key, digest.hexdigest())


IdempotencyDep = Annotated[Idempotency, Depends(idempotency)]


def purge_expired(session: Session, ttl_hours: int) -> int:
    cutoff = utcnow() - timedelta(hours=ttl_hours)
    result = session.execute(delete(IdempotencyRecord).where(IdempotencyRecord.created_at < cutoff))
    return cast(CursorResult[Any], result).rowcount or 0
