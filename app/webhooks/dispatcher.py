"""Sending the outbox: shared by every replica, nothing sent twice.

1. Claim: in a short transaction, `SELECT ... FOR UPDATE SKIP LOCKED` picks due
   deliveries no other replica is claiming, and leases them (next_attempt_at moves
   past the lease): another replica will not see them until the lease runs out.
2. Send: outside any transaction, with httpx and a timeout, signed for this attempt.
3. Record: 2xx is delivered; anything else is retried with exponential backoff and
   jitter, with the same webhook-id, for the retry window, then marked failed. An
   endpoint failing for longer than `webhook_disable_after_hours` is disabled, and
   an `endpoint.disabled` event says so.

A replica that dies between claim and record leaves a lease that expires: the
delivery is then retried (at least once delivery; receivers dedupe on webhook-id).
"""

from __future__ import annotations

import logging
import random
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import timedelta

import httpx
from sqlalchemy import select

from app import metrics
from app.core.clock import utcnow
from app.core.config import Settings
from app.core.db import Database
from app.webhooks.models import WebhookAttempt, WebhookDelivery, WebhookEndpoint, WebhookEvent
from app.webhooks.service import emit, endpoints_changed
from app.webhooks.signing import signed_headers
from app.webhooks.urls import UnsafeUrl, check_url

log = logging.getLogger("coverwatch.webhooks")
LEASE = timedelta(minutes=2)


@dataclass
class Claimed:
    delivery_id: int
    tenant_id: str
    event_id: str
    body: str
    url: str
    secret: str
    attempt: int


@dataclass
class Outcome:
    status_code: int | None
    latency_ms: int
    error: str | None

    @property
    def ok(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


def claim(db: Database, limit: int = 20) -> list[Claimed]:
    now = utcnow()
    with db.session() as session, session.begin():
        stmt = (
            select(WebhookDelivery, WebhookEvent.body, WebhookEndpoint.url, WebhookEndpoint.secret)
            .join(WebhookEvent, WebhookEvent.id == WebhookDelivery.event_id)
            .join(WebhookEndpoint, WebhookEndpoint.id == WebhookDelivery.endpoint_id)
            .where(WebhookDelivery.status == "pending", WebhookDelivery.next_attempt_at <= now,
                   WebhookEndpoint.enabled.is_(True))
            .order_by(WebhookDelivery.next_attempt_at, WebhookDelivery.id)
            .limit(limit)
            .with_for_update(of=WebhookDelivery, skip_locked=True)
        )
        claimed = []
        for delivery, body, url, secret in session.execute(stmt):
            delivery.attempts += 1
            delivery.next_attempt_at = now + LEASE
            claimed.append(Claimed(delivery.id, delivery.tenant_id, delivery.event_id, body, url, secret,
                                   delivery.attempts))
        return claimed


def send(client: httpx.Client, item: Claimed, settings: Settings) -> Outcome:
    started = time.monotonic()
    try:
        check_url(item.url, allow_private=settings.webhook_allow_private)  # again: DNS may have changed
        response = client.post(item.url, content=item.body.encode(),
                               headers=signed_headers(item.secret, item.event_id, item.body, utcnow()))
        return Outcome(response.status_code, int((time.monotonic() - started) * 1000), None)
    except UnsafeUrl as exc:
        return Outcome(None, 0, f"refused: {exc}")
    except httpx.HTTPError as exc:
        return Outcome(None, int((time.monotonic() - started) * 1000), f"{type(exc).__name__}: {exc}"[:500])


def backoff(attempt: int, settings: Settings) -> timedelta:
    """Exponential, capped, with jitter (a random half to all of the step)."""
    step = min(settings.webhook_retry_max_seconds, settings.webhook_retry_base_seconds * 2 ** (attempt - 1))
    return timedelta(seconds=step * random.uniform(0.5, 1.0))


def record(db: Database, item: Claimed, outcome: Outcome, settings: Settings) -> None:
    now = utcnow()
    with db.session() as session, session.begin():
        delivery = session.get(WebhookDelivery, item.delivery_id, with_for_update=True)
        endpoint = session.get(WebhookEndpoint, delivery.endpoint_id) if delivery else None
        if delivery is None or endpoint is None:
            return
        session.add(WebhookAttempt(tenant_id=item.tenant_id, delivery_id=delivery.id, attempted_at=now,
                                   status_code=outcome.status_code, latency_ms=outcome.latency_ms,
                                   error=outcome.error))
        delivery.last_status_code = outcome.status_code
        delivery.last_latency_ms = outcome.latency_ms
        delivery.last_error = outcome.error
        if outcome.ok:
            delivery.status = "delivered"
            delivery.delivered_at = now
            endpoint.failing_since = None
            return
        if now - delivery.window_start >= timedelta(hours=settings.webhook_retry_window_hours):
            delivery.status = "failed"
        else:
            delivery.next_attempt_at = now + backoff(delivery.attempts, settings)
        endpoint.failing_since = endpoint.failing_since or now
        if endpoint.enabled and now - endpoint.failing_since >= timedelta(hours=settings.webhook_disable_after_hours):
            endpoint.enabled = False
            endpoints_changed(session)
            endpoint.disabled_reason = f"failing since {endpoint.failing_since.isoformat()}"
            log.warning("webhook endpoint %s disabled: %s", endpoint.id, endpoint.disabled_reason)
            emit(session, item.tenant_id, "endpoint.disabled",
                 {"endpoint_id": endpoint.id, "url": endpoint.url, "reason": endpoint.disabled_reason})


SENDERS = 8


def dispatch_pending(db: Database, settings: Settings, client: httpx.Client | None = None,
                     max_batches: int = 50) -> int:
    """Send what is due now, a claimed batch at a time, several deliveries at once (one slow receiver
    does not hold up the others); returns how many attempts were made."""
    own = client is None
    http = client or httpx.Client(timeout=settings.webhook_timeout_seconds, follow_redirects=False)

    def attempt(item: Claimed) -> None:
        outcome = send(http, item, settings)
        metrics.webhook_attempt(outcome.ok, outcome.latency_ms)
        record(db, item, outcome, settings)

    sent = 0
    try:
        with ThreadPoolExecutor(max_workers=SENDERS, thread_name_prefix="webhook") as pool:
            for _ in range(max_batches):
                batch = claim(db, limit=SENDERS * 4)
                if not batch:
                    break
                list(pool.map(attempt, batch))
                sent += len(batch)
    finally:
        if own:
            http.close()
    return sent
