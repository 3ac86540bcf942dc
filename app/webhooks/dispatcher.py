"""Sending the outbox: shared by every replica, nothing lost, each result recorded on its own attempt.

1. Claim: in a short transaction, `SELECT ... FOR UPDATE SKIP LOCKED` picks due deliveries no other
   replica is claiming, bumps their attempt number (the fencing token of this attempt) and leases them
   (next_attempt_at moves `webhook_lease_seconds` ahead): no replica sees them again before the lease runs out.
2. Send: outside any transaction. The URL is checked again, its host resolved once, every address
   checked, and the connection pinned to the checked address (`transport.py`); signed for this attempt
   with the current secret (and the previous one during a rotation's grace period); a total deadline
   (`webhook_timeout_seconds`, below the lease) for the whole exchange; redirects are not followed. A sender
   keeps its connection to a receiver open for its next delivery there, to the same checked address.
3. Record: the attempt is logged; the delivery is updated only if its attempt number is still this
   attempt's (read under the delivery's row lock, held to the commit): a late result, after the lease
   expired and another attempt began, never overwrites the newer one. 2xx is delivered; anything else is
   retried with exponential backoff and jitter, with the same webhook-id, for the retry window, then marked
   failed. An endpoint failing for longer than `webhook_disable_after_hours` is disabled, and an
   `endpoint.disabled` event says so.

A replica that dies between claim and record leaves a lease that expires: the delivery is then retried
(at least once delivery; receivers dedupe on webhook-id).
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from app import metrics
from app.core.clock import utcnow
from app.core.config import Settings
from app.core.db import Database, in_list, insert_rows
from app.webhooks import crypto
from app.webhooks.models import WebhookAttempt, WebhookDelivery, WebhookEndpoint, WebhookEvent
from app.webhooks.service import emit, endpoints_changed
from app.webhooks.signing import signed_headers
from app.webhooks.transport import PinnedClients
from app.webhooks.urls import IPAddress, Resolver, UnsafeUrl, check_url, system_resolver

log = logging.getLogger("coverwatch.webhooks")


@dataclass
class Claimed:
    delivery_id: int
    tenant_id: str
    event_id: str
    body: str
    url: str
    secrets: list[str]  # decrypted for this attempt only: never logged, never stored in clear
    attempt: int
    lease_ends: float  # time.monotonic() value: the send must be over before another replica may retry

    def __repr__(self) -> str:  # keep the secrets out of any traceback or debug output
        return f"Claimed(delivery_id={self.delivery_id}, event_id={self.event_id}, attempt={self.attempt})"


@dataclass
class Outcome:
    status_code: int | None
    latency_ms: int
    error: str | None
    connected_to: str | None = None

    @property
    def ok(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


def _secrets(settings: Settings, row: Any, now: datetime) -> list[str]:
    """The secrets that sign this attempt (`row`: a claimed delivery's, with its endpoint's columns); none when
    they cannot be decrypted (the attempt then fails on its own, instead of one endpoint's unreadable secret
    stopping every delivery)."""
    try:
        out = [crypto.decrypt(settings, row.secret_encrypted)]
        if row.previous_secret_encrypted and row.previous_secret_until and now < row.previous_secret_until:
            out.append(crypto.decrypt(settings, row.previous_secret_encrypted))
    except crypto.SecretKeyMissing as exc:
        log.error("webhook endpoint %s: %s", row.endpoint_id, exc)
        return []
    return out


_DNS = ThreadPoolExecutor(max_workers=4, thread_name_prefix="webhook-dns")


class ResolveTimeout(Exception):
    pass


def _within(resolver: Resolver, deadline: float) -> Resolver:
    """`resolver`, given no more than the time left until `deadline` (getaddrinfo itself has no timeout)."""

    def resolve(host: str, port: int) -> Sequence[IPAddress]:
        future = _DNS.submit(resolver, host, port)
        try:
            return future.result(timeout=max(deadline - time.monotonic(), 0.0))
        except FutureTimeout as exc:
            raise ResolveTimeout(f"resolving {host} did not finish before the deadline") from exc

    return resolve


def claim(db: Database, settings: Settings, limit: int = 20, tenant_ids: Sequence[str] | None = None,
          due_by: datetime | None = None) -> list[Claimed]:
    """Lease up to `limit` deliveries due by `due_by` (now by default), of `tenant_ids` only when given.

    Plain rows, two statements: the deliveries locked (`SKIP LOCKED`) with what sending them needs, then one
    UPDATE of their attempt numbers and leases."""
    now = utcnow()
    lease = now + timedelta(seconds=settings.webhook_lease_seconds)
    with db.session() as session, session.begin():
        stmt = (
            select(WebhookDelivery.id, WebhookDelivery.tenant_id, WebhookDelivery.event_id, WebhookDelivery.attempts,
                   WebhookEvent.body, WebhookEndpoint.id.label("endpoint_id"), WebhookEndpoint.url,
                   WebhookEndpoint.secret_encrypted, WebhookEndpoint.previous_secret_encrypted,
                   WebhookEndpoint.previous_secret_until)
            .join(WebhookEvent, WebhookEvent.id == WebhookDelivery.event_id)
            .join(WebhookEndpoint, WebhookEndpoint.id == WebhookDelivery.endpoint_id)
            .where(WebhookDelivery.status == "pending", WebhookDelivery.next_attempt_at <= (due_by or now),
                   WebhookEndpoint.enabled.is_(True))
            .order_by(WebhookDelivery.next_attempt_at, WebhookDelivery.id)
            .limit(limit)
            .with_for_update(of=WebhookDelivery, skip_locked=True)
        )
        if tenant_ids is not None:
            stmt = stmt.where(WebhookDelivery.tenant_id.in_(tenant_ids))
        rows = session.execute(stmt).all()
        if not rows:
            return []
        session.execute(update(WebhookDelivery).where(in_list(WebhookDelivery.id, [r.id for r in rows]))
                        .values(attempts=WebhookDelivery.attempts + 1, next_attempt_at=lease)
                        .execution_options(synchronize_session=False))
        # Decrypted once per endpoint of the batch.
        secrets = {r.endpoint_id: _secrets(settings, r, now) for r in {r.endpoint_id: r for r in rows}.values()}
        ends = time.monotonic() + settings.webhook_lease_seconds
        return [Claimed(r.id, r.tenant_id, r.event_id, r.body, r.url, secrets[r.endpoint_id], r.attempts + 1, ends)
                for r in rows]


# What a receiver's answer may carry for its connection to be kept: a longer body is not read (nor kept).
KEEP_ALIVE_BODY = 64 * 1024
# What a kept-alive connection the receiver closed meanwhile raises: the exchange is made once more, on a new one.
_STALE = (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError)


def send(item: Claimed, settings: Settings, resolver: Resolver = system_resolver,
         clients: PinnedClients | None = None) -> Outcome:
    """One attempt, over within `webhook_timeout_seconds` from its start, DNS resolution included. With `clients`
    (a sender's), the receiver's connection is reused from the sender's previous delivery to it, if still open."""
    started = time.monotonic()
    deadline = min(started + settings.webhook_timeout_seconds, item.lease_ends)

    def elapsed() -> int:
        return int((time.monotonic() - started) * 1000)

    if not item.secrets:
        return Outcome(None, 0, "not sent: the endpoint's secret cannot be decrypted with COVERWATCH_SECRET_KEY")
    own = clients is None
    pool = PinnedClients(keep=1) if clients is None else clients
    try:
        target, address = check_url(item.url, settings.webhook_allowed_networks, _within(resolver, deadline))
        headers = signed_headers(item.secrets, item.event_id, item.body, utcnow())
        while True:
            client, backend = pool.get(target.host, target.port, address, deadline, settings.webhook_ca_file)
            connections = len(backend.connected_to)
            try:
                with client.stream("POST", target.url, content=item.body.encode(), headers=headers,
                                   timeout=max(deadline - time.monotonic(), 0.001)) as response:
                    error = "redirect not followed" if response.is_redirect else None
                    _read_short(response)
                    return Outcome(response.status_code, elapsed(), error, str(address))
            except _STALE:
                # Sent on a kept-alive connection (none was opened for it) that turned out closed: once more, on a
                # new connection. The receiver may have had it (it dedupes on webhook-id: at least once).
                if len(backend.connected_to) > connections or connections == 0:
                    raise
                pool.discard(target.host, target.port, address, settings.webhook_ca_file)
    except UnsafeUrl as exc:
        return Outcome(None, elapsed(), f"refused: {exc}")
    except (httpx.HTTPError, ResolveTimeout) as exc:
        return Outcome(None, elapsed(), f"{type(exc).__name__}: {exc}"[:500])
    except Exception as exc:  # never leave a claimed delivery unrecorded (its lease would just loop)
        log.warning("webhook delivery %s: unexpected %s", item.delivery_id, type(exc).__name__)
        return Outcome(None, elapsed(), f"{type(exc).__name__}: {exc}"[:500])
    finally:
        if own:
            pool.close()


def _read_short(response: httpx.Response) -> None:
    """Read the answer's body if short, so that its connection can serve the next delivery (a connection whose
    answer was not read to its end is closed instead)."""
    read = 0
    for chunk in response.iter_raw():
        read += len(chunk)
        if read > KEEP_ALIVE_BODY:
            return


def backoff(attempt: int, settings: Settings) -> timedelta:
    """Exponential, capped, with jitter (a random half to all of the step)."""
    step = min(settings.webhook_retry_max_seconds,
               settings.webhook_retry_base_seconds * 2.0 ** min(max(attempt - 1, 0), 40))
    return timedelta(seconds=step * random.uniform(0.5, 1.0))


def record(db: Database, item: Claimed, outcome: Outcome, settings: Settings) -> bool:
    """Log the attempt and, unless a newer attempt has begun since, apply its result. Returns whether it did."""
    return record_many(db, [(item, outcome)], settings)[0]


def record_many(db: Database, results: Sequence[tuple[Claimed, Outcome]], settings: Settings) -> list[bool]:
    """`record` for several attempts: one transaction per tenant (a commit per delivery capped the dispatcher at
    about 100 deliveries/s), a few statements for all of its attempts. Returns, for each, whether its result was
    applied."""
    applied = [False] * len(results)
    by_tenant: dict[str, list[int]] = {}  # positions in `results`
    for n, (item, _) in enumerate(results):
        by_tenant.setdefault(item.tenant_id, []).append(n)
    for tenant_id, positions in by_tenant.items():
        with db.session(tenant_id) as session, session.begin():
            done = _record(session, tenant_id, [results[n] for n in positions], settings)
            for n, ok in zip(positions, done, strict=True):
                applied[n] = ok
    return applied


def _record(session: Session, tenant_id: str, results: Sequence[tuple[Claimed, Outcome]], settings: Settings
            ) -> list[bool]:
    """In the caller's transaction, bound to the tenant: the deliveries are locked (by id, in one statement), so
    the fence read here holds until the commit: a result lands only while its delivery is still at its attempt."""
    now = utcnow()
    ids = sorted({item.delivery_id for item, _ in results})
    deliveries = {d.id: d for d in session.execute(
        select(WebhookDelivery.id, WebhookDelivery.endpoint_id, WebhookDelivery.attempts, WebhookDelivery.status,
               WebhookDelivery.window_start)
        .where(in_list(WebhookDelivery.id, ids)).order_by(WebhookDelivery.id).with_for_update())}
    endpoint_ids = {d.endpoint_id for d in deliveries.values()}
    endpoints = {e.id: e for e in session.scalars(select(WebhookEndpoint).where(WebhookEndpoint.id.in_(endpoint_ids)))}
    attempts: list[dict[str, object]] = []
    updates: list[dict[str, object]] = []
    out: list[bool] = []
    settled: set[int] = set()  # deliveries given a result here: another result of one in this batch is late
    for item, outcome in results:
        delivery = deliveries.get(item.delivery_id)
        endpoint = endpoints.get(delivery.endpoint_id) if delivery is not None else None
        if delivery is None or endpoint is None:
            out.append(False)
            continue
        current = (delivery.attempts == item.attempt and delivery.status == "pending"
                   and delivery.id not in settled)
        attempts.append({"tenant_id": tenant_id, "delivery_id": delivery.id, "attempted_at": now,
                         "status_code": outcome.status_code, "latency_ms": outcome.latency_ms, "error": outcome.error,
                         "details": {"attempt": item.attempt, "connected_to": outcome.connected_to,
                                     **({} if current else {"late": True})}})
        out.append(current)
        if not current:
            log.info("webhook delivery %s: late result of attempt %s ignored (now at attempt %s, %s)",
                     delivery.id, item.attempt, delivery.attempts, delivery.status)
            continue
        values: dict[str, object] = {"last_status_code": outcome.status_code, "last_latency_ms": outcome.latency_ms,
                                     "last_error": outcome.error}
        if outcome.ok:
            values |= {"status": "delivered", "delivered_at": now}
        elif now - delivery.window_start >= timedelta(hours=settings.webhook_retry_window_hours):
            values |= {"status": "failed"}
        else:
            values |= {"next_attempt_at": now + backoff(item.attempt, settings)}
        settled.add(delivery.id)
        updates.append({"id": delivery.id, **values})
        _endpoint_result(session, tenant_id, endpoint, outcome.ok, now, settings)
    insert_rows(session, WebhookAttempt, attempts)
    if updates:  # by primary key, one executemany per set of columns
        session.execute(update(WebhookDelivery).execution_options(synchronize_session=False), updates)
    return out


def _endpoint_result(session: Session, tenant_id: str, endpoint: WebhookEndpoint, ok: bool, now: datetime,
                     settings: Settings) -> None:
    if ok:
        endpoint.failing_since = None
        return
    endpoint.failing_since = endpoint.failing_since or now
    if endpoint.enabled and now - endpoint.failing_since >= timedelta(hours=settings.webhook_disable_after_hours):
        endpoint.enabled = False
        endpoints_changed(session)
        endpoint.disabled_reason = f"failing since {endpoint.failing_since.isoformat()}"
        log.warning("webhook endpoint %s disabled: %s", endpoint.id, endpoint.disabled_reason)
        emit(session, tenant_id, "endpoint.disabled",
             {"endpoint_id": endpoint.id, "url": endpoint.url, "reason": endpoint.disabled_reason})


SENDERS = 8
BATCH = 10  # deliveries a sender claims at once: sent one after the other, each within its own lease


def dispatch_pending(db: Database, settings: Settings, resolver: Resolver = system_resolver,
                     max_attempts: int = 1000, tenant_ids: Sequence[str] | None = None) -> int:
    """Send what was due when the run started (each delivery at most once per run), with SENDERS workers
    each claiming a few deliveries at a time (BATCH, fewer when the lease holds fewer attempts at the longest)
    and sending them one after the other, on the connections it keeps open for the run: every send ends inside
    its lease, a slow receiver holds up only its own worker's batch, and the results are recorded together (one
    commit per batch). Returns how many attempts were made. `resolver` turns a host into addresses (the system's
    DNS; a test passes its own); `tenant_ids` limits the run to those tenants' deliveries."""
    budget = threading.Semaphore(max_attempts)
    started = utcnow()
    sent = 0
    lock = threading.Lock()

    # A sender's batch is sent one delivery after the other: at most as many as fit in a lease at the longest
    # attempt each, so the last one still ends inside its lease (a late result is fenced off anyway).
    size = max(1, min(BATCH, int(settings.webhook_lease_seconds // settings.webhook_timeout_seconds) - 1))

    def work() -> None:
        nonlocal sent
        clients = PinnedClients()  # this sender's connections, kept alive from one delivery to the next
        try:
            while True:
                permits = 0
                while permits < size and budget.acquire(blocking=False):
                    permits += 1
                if not permits:
                    return
                batch = claim(db, settings, limit=permits, tenant_ids=tenant_ids, due_by=started)
                for _ in range(permits - len(batch)):
                    budget.release()
                if not batch:
                    return
                results = []
                for item in batch:
                    outcome = send(item, settings, resolver, clients)
                    metrics.webhook_attempt(outcome.ok, outcome.latency_ms)
                    results.append((item, outcome))
                record_many(db, results, settings)
                with lock:
                    sent += len(results)
        finally:
            clients.close()

    with ThreadPoolExecutor(max_workers=SENDERS, thread_name_prefix="webhook") as pool:
        for future in [pool.submit(work) for _ in range(SENDERS)]:
            future.result()
    return sent
