"""Webhook endpoints, and the outbox: events written in the transaction of the change that causes them."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import and_, event, insert, or_, select
from sqlalchemy.orm import Session

from app.core import public_ids
from app.core.clock import utcnow
from app.core.context import Context
from app.core.errors import Invalid, NotFound
from app.webhooks import crypto
from app.webhooks.models import WebhookAttempt, WebhookDelivery, WebhookEndpoint, WebhookEvent
from app.webhooks.schemas import AttemptOut, DeliveryOut, EndpointIn, EndpointOut, EndpointPatch
from app.webhooks.signing import new_secret
from app.webhooks.urls import UnsafeUrl, check_url


def _check(ctx: Context, url: str) -> None:
    try:
        check_url(url, ctx.settings.webhook_allowed_networks)
    except UnsafeUrl as exc:
        raise Invalid(f"url: {exc}.", field="/url") from exc


def create_endpoint(ctx: Context, body: EndpointIn) -> tuple[WebhookEndpoint, str]:
    _check(ctx, body.url)
    secret = new_secret()
    endpoint = WebhookEndpoint(id=f"ep_{uuid.uuid4().hex}", url=body.url, description=body.description,
                               event_types=sorted(set(body.event_types)), enabled=body.enabled,
                               secret_encrypted=crypto.encrypt(ctx.settings, secret))
    ctx.session.add(endpoint)
    ctx.session.flush()
    endpoints_changed(ctx.session)
    return endpoint, secret


def get_endpoint(ctx: Context, endpoint_id: str) -> WebhookEndpoint:
    endpoint = ctx.session.scalars(select(WebhookEndpoint).where(WebhookEndpoint.id == endpoint_id)).first()
    if endpoint is None:
        raise NotFound(f"No webhook endpoint '{endpoint_id}'.")
    return endpoint


def list_endpoints(ctx: Context, *, after: tuple[datetime, str] | None, limit: int) -> list[WebhookEndpoint]:
    """Oldest first; `after` is the (created_at, id) of the previous page's last endpoint."""
    stmt = select(WebhookEndpoint).order_by(WebhookEndpoint.created_at, WebhookEndpoint.id).limit(limit)
    if after is not None:
        at, id_ = after
        stmt = stmt.where(or_(WebhookEndpoint.created_at > at,
                              and_(WebhookEndpoint.created_at == at, WebhookEndpoint.id > id_)))
    return list(ctx.session.scalars(stmt))


def patch_endpoint(ctx: Context, endpoint_id: str, body: EndpointPatch) -> WebhookEndpoint:
    endpoint = get_endpoint(ctx, endpoint_id)
    if body.url is not None:
        _check(ctx, body.url)
        endpoint.url = body.url
    if body.event_types is not None:
        endpoint.event_types = sorted(set(body.event_types))
    if "description" in body.model_fields_set:
        endpoint.description = body.description
    if body.enabled is not None:
        if body.enabled and not endpoint.enabled:
            endpoint.failing_since = None
            endpoint.disabled_reason = None
        endpoint.enabled = body.enabled
    ctx.session.flush()
    endpoints_changed(ctx.session)
    return endpoint


def delete_endpoint(ctx: Context, endpoint_id: str) -> None:
    ctx.session.delete(get_endpoint(ctx, endpoint_id))
    ctx.session.flush()
    endpoints_changed(ctx.session)


def rotate_secret(ctx: Context, endpoint_id: str, grace_hours: float | None = None) -> tuple[WebhookEndpoint, str]:
    """A new secret; the current one keeps signing too (a second signature) for `grace_hours`
    (`webhook_secret_grace_hours` by default; 0 drops it at once, e.g. after a leak). Rotating again
    within the grace period drops the oldest."""
    endpoint = get_endpoint(ctx, endpoint_id)
    grace = ctx.settings.webhook_secret_grace_hours if grace_hours is None else grace_hours
    secret = new_secret()
    if grace > 0:
        endpoint.previous_secret_encrypted = endpoint.secret_encrypted
        endpoint.previous_secret_until = utcnow() + timedelta(hours=grace)
    else:
        endpoint.previous_secret_encrypted = endpoint.previous_secret_until = None
    endpoint.secret_encrypted = crypto.encrypt(ctx.settings, secret)
    ctx.session.flush()
    return endpoint, secret


def endpoint_out(e: WebhookEndpoint) -> EndpointOut:
    until = e.previous_secret_until if e.previous_secret_until and e.previous_secret_until > utcnow() else None
    return EndpointOut(id=e.id, url=e.url, event_types=e.event_types, enabled=e.enabled, description=e.description,
                       disabled_reason=e.disabled_reason, failing_since=e.failing_since, created_at=e.created_at,
                       previous_secret_signs_until=until)


def event_body(tenant_id: str, type_: str, data: dict[str, Any]) -> str:
    """The Standard Webhooks body, serialised once: these exact bytes are signed and sent on every attempt.
    `tenant_id` names the insured company, so one receiver shared by several tenants tells them apart."""
    stamp = utcnow().astimezone(UTC).isoformat().replace("+00:00", "Z")
    return json.dumps({"type": type_, "timestamp": stamp, "tenant_id": tenant_id, "data": data},
                      separators=(",", ":"), sort_keys=True, default=str)


_ENDPOINTS_KEY = "webhook_endpoints"


def _enabled_endpoints(session: Session, tenant_id: str) -> list[WebhookEndpoint]:
    """The tenant's enabled endpoints, read once per transaction (a batch may raise hundreds of events)."""
    cache = session.info.setdefault(_ENDPOINTS_KEY, {})
    if tenant_id not in cache:
        session.flush()  # an endpoint disabled in this transaction is not one any more
        cache[tenant_id] = list(session.scalars(
            select(WebhookEndpoint).where(WebhookEndpoint.tenant_id == tenant_id, WebhookEndpoint.enabled.is_(True))))
    return cache[tenant_id]


def endpoints_changed(session: Session) -> None:
    session.info.pop(_ENDPOINTS_KEY, None)


@event.listens_for(Session, "after_commit")
@event.listens_for(Session, "after_rollback")
def _forget_endpoints(session: Session) -> None:
    endpoints_changed(session)


Payload = dict[str, Any] | Callable[[], dict[str, Any]]


def emit_many(session: Session, tenant_id: str, events: Sequence[tuple[str, Payload]],
              endpoints: Sequence[WebhookEndpoint] | None = None) -> list[WebhookEvent]:
    """Write events and one pending delivery per subscribed, enabled endpoint, in the caller's transaction,
    in one statement each. An event no endpoint subscribes to is not written at all (nobody would ever read
    it): its payload, when given as a function, is not even built. `endpoints`, when given, all get the events
    whatever they subscribe to (a ping)."""
    chosen = endpoints is not None
    if endpoints is None:
        endpoints = _enabled_endpoints(session, tenant_id)
    if not endpoints or not events:
        return []
    now = utcnow()
    written: list[WebhookEvent] = []
    deliveries: list[dict[str, Any]] = []
    for type_, data in events:
        targets = [e for e in endpoints if chosen or not e.event_types or type_ in e.event_types]
        if not targets:
            continue
        payload = data() if callable(data) else data
        event = WebhookEvent(id=f"msg_{uuid.uuid4().hex}", tenant_id=tenant_id, type=type_,
                             body=event_body(tenant_id, type_, payload))
        written.append(event)
        deliveries.extend({"tenant_id": tenant_id, "event_id": event.id, "endpoint_id": endpoint.id,
                           "status": "pending", "attempts": 0, "next_attempt_at": now, "window_start": now,
                           "created_at": now} for endpoint in targets)
    if written:
        session.add_all(written)
        session.flush()  # the deliveries reference them
        session.execute(insert(WebhookDelivery), deliveries)
    return written


def emit(session: Session, tenant_id: str, type_: str, data: Payload,
         endpoints: Sequence[WebhookEndpoint] | None = None) -> WebhookEvent | None:
    """One event (see `emit_many`); None when no endpoint subscribes to it."""
    written = emit_many(session, tenant_id, [(type_, data)], endpoints)
    return written[0] if written else None


def ping(ctx: Context, endpoint_id: str) -> WebhookDelivery:
    endpoint = get_endpoint(ctx, endpoint_id)
    event = emit(ctx.session, ctx.tenant.id, "ping", {"endpoint_id": endpoint.id, "message": "Coverwatch test"},
                 endpoints=[endpoint])
    assert event is not None  # sent to this endpoint whatever it subscribes to
    return ctx.session.scalars(select(WebhookDelivery).where(WebhookDelivery.event_id == event.id)).one()


def list_deliveries(ctx: Context, *, endpoint_id: str | None, status: str | None, event_type: str | None,
                    before_id: int | None, limit: int) -> list[DeliveryOut]:
    stmt = (select(WebhookDelivery, WebhookEvent.type).join(WebhookEvent, WebhookEvent.id == WebhookDelivery.event_id)
            .order_by(WebhookDelivery.id.desc()).limit(limit))
    if endpoint_id:
        stmt = stmt.where(WebhookDelivery.endpoint_id == endpoint_id)
    if status:
        stmt = stmt.where(WebhookDelivery.status == status)
    if event_type:
        stmt = stmt.where(WebhookEvent.type == event_type)
    if before_id is not None:
        stmt = stmt.where(WebhookDelivery.id < before_id)
    rows = ctx.session.execute(stmt).all()
    attempts: dict[int, list[AttemptOut]] = {}
    ids = [d.id for d, _ in rows]
    if ids:
        for a in ctx.session.scalars(select(WebhookAttempt).where(WebhookAttempt.delivery_id.in_(ids))
                                     .order_by(WebhookAttempt.id)):
            attempts.setdefault(a.delivery_id, []).append(
                AttemptOut(attempted_at=a.attempted_at, status_code=a.status_code, latency_ms=a.latency_ms,
                           error=a.error, attempt=(a.details or {}).get("attempt"),
                           address=(a.details or {}).get("connected_to"), late=bool((a.details or {}).get("late"))))
    return [delivery_out(d, t, attempts.get(d.id, [])) for d, t in rows]


def delivery_out(d: WebhookDelivery, event_type: str, attempts: list[AttemptOut]) -> DeliveryOut:
    return DeliveryOut(
        id=public_ids.of(d), event_id=d.event_id, event_type=event_type, endpoint_id=d.endpoint_id,
        status=d.status,  # type: ignore[arg-type]
        attempts=d.attempts, next_attempt_at=d.next_attempt_at if d.status == "pending" else None,
        last_status_code=d.last_status_code, last_error=d.last_error, last_latency_ms=d.last_latency_ms,
        delivered_at=d.delivered_at, created_at=d.created_at, attempt_log=attempts)


def retry(ctx: Context, delivery_id: int) -> DeliveryOut:
    d = ctx.session.scalars(select(WebhookDelivery).where(WebhookDelivery.id == delivery_id)).first()
    if d is None:
        raise NotFound("No such webhook delivery.")
    if d.status != "delivered":
        now = utcnow()
        d.status, d.next_attempt_at, d.window_start = "pending", now, now
    ctx.session.flush()
    event = ctx.session.get(WebhookEvent, d.event_id)
    return delivery_out(d, event.type if event else "?", [])
