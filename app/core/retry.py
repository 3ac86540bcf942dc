"""Transient database failures retried: the whole request is run again, before anything reached the client.

A deadlock (PostgreSQL SQLSTATE 40P01), a serialization failure (40001), a unique key another transaction
inserted first (23505: two batches creating the same reference at once), and SQLite's "database is locked"
after its busy timeout all mean the same thing: the unit of work was rolled back and nothing was written, and
the same request run again will most likely succeed (the other transaction has committed by then; a re-run
sees its rows). The request's session is the unit of work (`app.core.db.get_session`): re-running the request
re-runs everything from authentication to the commit, with a new session, so no half-done state survives.

How: `RetryTransient` (ASGI middleware) records the request body as the app reads it and puts a `Retry` in the
scope. The exception handlers (`app.core.errors`) call `request_retry` for a database error; when it is
transient and the budget allows, the error response is dropped (never sent) and the app runs again, with the
recorded body, after a short jittered pause. When the budget is spent the handler's own answer goes out: a
503 with Retry-After (a 409 for a unique key). Every re-run is counted in `coverwatch_request_retries_total`.
"""

from __future__ import annotations

import asyncio
import logging
import random
from typing import Any

from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.metrics import REQUEST_RETRIES

log = logging.getLogger("coverwatch.retry")

SCOPE_KEY = "coverwatch.retry"
RETRIES = 3  # re-runs after the first attempt
BACKOFF_SECONDS = 0.05  # the n-th re-run waits up to BACKOFF_SECONDS * 2**n (full jitter)

_SQLSTATES = {"40P01": "deadlock", "40001": "serialization", "23505": "unique"}
_SQLITE_BUSY, _SQLITE_LOCKED = 5, 6
_SQLITE_UNIQUE = {1555, 2067}  # SQLITE_CONSTRAINT_PRIMARYKEY, SQLITE_CONSTRAINT_UNIQUE


def transient_reason(exc: BaseException) -> str | None:
    """Why a re-run may succeed (deadlock, serialization, unique, busy), or None for a failure that would recur.

    `exc` is SQLAlchemy's wrapper; the driver's error is its `orig`: psycopg gives the SQLSTATE, sqlite3 its
    extended result code."""
    orig: Any = getattr(exc, "orig", None)
    if (sqlstate := getattr(orig, "sqlstate", None)) is not None:
        return _SQLSTATES.get(sqlstate)
    code = getattr(orig, "sqlite_errorcode", None)
    if code is None:
        return None
    if code & 0xFF in (_SQLITE_BUSY, _SQLITE_LOCKED):
        return "busy"
    return "unique" if code in _SQLITE_UNIQUE else None


class Retry:
    """One request's re-run budget, shared by its attempts."""

    def __init__(self, retries: int) -> None:
        self.left = retries
        self.reason: str | None = None  # set during an attempt that is to be run again

    def request(self, reason: str) -> bool:
        if self.left <= 0:
            return False
        self.reason = reason
        return True


def request_retry(request: Request, exc: BaseException) -> bool:
    """From an exception handler: True when the request will be run again (the handler's response is dropped)."""
    reason = transient_reason(exc)
    retry: Retry | None = request.scope.get(SCOPE_KEY)
    return reason is not None and retry is not None and retry.request(reason)


class RetryTransient:
    """Runs a request again when its handler asked for it (`request_retry`) and nothing was sent yet."""

    def __init__(self, app: ASGIApp, retries: int = RETRIES, backoff: float = BACKOFF_SECONDS) -> None:
        self.app = app
        self.retries = retries
        self.backoff = backoff

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        retry = Retry(self.retries)
        # Request state (the tenant the ETag middleware reads) stays one dict, seen from outside as well.
        scope.setdefault("state", {})
        base = dict(scope)
        recorded: list[Message] = []

        async def run_once() -> bool:
            """One attempt; True when its response was dropped for a re-run."""
            position = 0
            dropped = False

            async def replaying_receive() -> Message:
                nonlocal position
                if position < len(recorded):
                    position += 1
                    return recorded[position - 1]
                message = await receive()
                if message["type"] == "http.request":
                    recorded.append(message)
                    position += 1
                return message

            async def guarded_send(message: Message) -> None:
                nonlocal dropped
                if message["type"] == "http.response.start" and retry.reason is not None:
                    dropped = True
                if not dropped:
                    await send(message)

            # A fresh copy of the scope each time: routing writes into it (path params, root path, route).
            attempt = dict(base, **{SCOPE_KEY: retry})
            await self.app(attempt, replaying_receive, guarded_send)
            scope.update(attempt)  # what the router found, for the metrics middleware outside
            return dropped

        while await run_once():
            reason, retry.reason = retry.reason, None
            retry.left -= 1
            attempt = self.retries - retry.left
            REQUEST_RETRIES.labels(reason).inc()
            log.info("%s on %s %s: running it again (%d of %d)", reason, scope["method"], scope["path"], attempt,
                     self.retries)
            await asyncio.sleep(random.uniform(0, self.backoff * 2**attempt))
