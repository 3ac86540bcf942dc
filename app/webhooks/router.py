"""Webhook endpoints (admin) and the delivery log."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query, Response

from app.core import public_ids
from app.core.context import ContextDep
from app.core.idempotency import IdempotencyDep
from app.core.pagination import (
    Cursor,
    IdPath,
    Limit,
    Page,
    cursor_datetime,
    decode_cursor,
    decode_id_cursor,
    encode_cursor,
    next_cursor,
)
from app.core.security import AdminAccess
from app.webhooks import service
from app.webhooks.schemas import (
    DeliveryOut,
    EndpointIn,
    EndpointOut,
    EndpointPatch,
    EndpointWithSecret,
    EventType,
    RotateIn,
)

router = APIRouter(prefix="/v1", tags=["webhooks"])


@router.post("/webhook-endpoints", response_model=EndpointWithSecret, status_code=201)
def create_endpoint(body: EndpointIn, ctx: ContextDep, _: AdminAccess, idem: IdempotencyDep) -> Response:
    """Register a receiver. The signing secret is in this response only (a replay omits it)."""
    if (replayed := idem.replay()) is not None:
        return replayed
    endpoint, secret = service.create_endpoint(ctx, body)
    out = service.endpoint_out(endpoint)
    return idem.respond(201, EndpointWithSecret(**out.model_dump(), secret=secret), replay_as=out)


@router.get("/webhook-endpoints", response_model=Page[EndpointOut])
def list_endpoints(ctx: ContextDep, _: AdminAccess, limit: Limit = 100, cursor: Cursor = None) -> Page[EndpointOut]:
    """Webhook receivers, oldest first."""
    after = decode_cursor(cursor, 2)
    rows = service.list_endpoints(ctx, after=(cursor_datetime(after[0]), after[1]) if after else None,
                                  limit=limit + 1)
    return Page(items=[service.endpoint_out(e) for e in rows[:limit]],
                next_cursor=next_cursor(rows, limit, lambda e: [e.created_at.isoformat(), e.id]))


@router.get("/webhook-endpoints/{endpoint_id}", response_model=EndpointOut)
def get_endpoint(endpoint_id: str, ctx: ContextDep, _: AdminAccess) -> EndpointOut:
    """A webhook receiver."""
    return service.endpoint_out(service.get_endpoint(ctx, endpoint_id))


@router.patch("/webhook-endpoints/{endpoint_id}", response_model=EndpointOut)
def patch_endpoint(endpoint_id: str, body: EndpointPatch, ctx: ContextDep, _: AdminAccess) -> EndpointOut:
    """Change the URL, the event filter, the description, or enable (again) / disable."""
    return service.endpoint_out(service.patch_endpoint(ctx, endpoint_id, body))


@router.delete("/webhook-endpoints/{endpoint_id}", status_code=204)
def delete_endpoint(endpoint_id: str, ctx: ContextDep, _: AdminAccess) -> Response:
    """Delete a webhook receiver."""
    service.delete_endpoint(ctx, endpoint_id)
    return Response(status_code=204)


@router.post("/webhook-endpoints/{endpoint_id}/rotate-secret", response_model=EndpointWithSecret)
def rotate_secret(endpoint_id: str, ctx: ContextDep, _: AdminAccess, idem: IdempotencyDep,
                  body: RotateIn | None = None) -> Response:
    """A new signing secret, in this response only (a replay omits it). The previous secret keeps signing
    too, as a second signature in `webhook-signature`, for `grace_hours` (24 h by default), so receivers
    switch over without rejecting a delivery."""
    if (replayed := idem.replay()) is not None:
        return replayed
    endpoint, secret = service.rotate_secret(ctx, endpoint_id, body.grace_hours if body else None)
    out = service.endpoint_out(endpoint)
    return idem.respond(200, EndpointWithSecret(**out.model_dump(), secret=secret), replay_as=out)


@router.post("/webhook-endpoints/{endpoint_id}/test", response_model=DeliveryOut, status_code=202)
def test_endpoint(endpoint_id: str, ctx: ContextDep, _: AdminAccess, idem: IdempotencyDep) -> Response:
    """Queue a `ping` event to this endpoint; follow it in /v1/webhook-deliveries."""
    if (replayed := idem.replay()) is not None:
        return replayed
    delivery = service.ping(ctx, endpoint_id)
    return idem.respond(202, service.delivery_out(delivery, "ping", []))


@router.get("/webhook-deliveries", response_model=Page[DeliveryOut])
def list_deliveries(
    ctx: ContextDep, _: AdminAccess, endpoint_id: str | None = None,
    status: Literal["pending", "delivered", "failed"] | None = None,
    event_type: Annotated[EventType | None, Query()] = None, limit: Limit = 100, cursor: Cursor = None,
) -> Page[DeliveryOut]:
    """Webhook deliveries, newest first, with every attempt: status code, latency, error."""
    after = decode_id_cursor(cursor)
    before = None if after is None else public_ids.decode(ctx.tenant, "webhook_deliveries", after)
    rows = service.list_deliveries(ctx, endpoint_id=endpoint_id, status=status, event_type=event_type,
                                   before_id=before, limit=limit + 1)
    next_cursor = encode_cursor([rows[limit - 1].id]) if len(rows) > limit else None
    return Page(items=rows[:limit], next_cursor=next_cursor)


@router.post("/webhook-deliveries/{delivery_id}/retry", response_model=DeliveryOut)
def retry_delivery(delivery_id: IdPath, ctx: ContextDep, _: AdminAccess, idem: IdempotencyDep) -> Response:
    """Send again now (a failed delivery gets a new retry window)."""
    if (replayed := idem.replay()) is not None:
        return replayed
    return idem.respond(200, service.retry(ctx, public_ids.decode(ctx.tenant, "webhook_deliveries", delivery_id)))
