from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from app.core.fields import StrictModel

EventType = Literal["alert.opened", "alert.acknowledged", "alert.resolved", "claim.filed", "endpoint.disabled",
                    "ping"]
EVENT_TYPES: tuple[str, ...] = EventType.__args__  # type: ignore[attr-defined]


class EndpointIn(StrictModel):
    url: str = Field(min_length=1, max_length=2000)
    event_types: list[EventType] = Field(default_factory=list, description="Empty: every event")
    enabled: bool = True
    description: str | None = Field(default=None, max_length=500)


class EndpointPatch(StrictModel):
    url: str | None = Field(default=None, min_length=1, max_length=2000)
    event_types: list[EventType] | None = None
    enabled: bool | None = None
    description: str | None = Field(default=None, max_length=500)


class EndpointOut(BaseModel):
    id: str
    url: str
    event_types: list[str]
    enabled: bool
    description: str | None
    disabled_reason: str | None
    failing_since: datetime | None
    created_at: datetime
    previous_secret_signs_until: datetime | None = Field(
        default=None, description="After a rotation: deliveries carry a second signature, with the previous "
        "secret, until then")


class RotateIn(StrictModel):
    grace_hours: float | None = Field(
        default=None, ge=0, le=720, description="How long the previous secret keeps signing too (default: "
        "COVERWATCH_WEBHOOK_SECRET_GRACE_HOURS, 24 h); 0 drops it at once (after a leak)")


class EndpointWithSecret(EndpointOut):
    secret: str = Field(description="whsec_...: shown at creation and rotation only")


class AttemptOut(BaseModel):
    attempted_at: datetime
    status_code: int | None
    latency_ms: int
    error: str | None
    attempt: int | None = Field(default=None, description="The attempt's number (1 for the first send)")
    address: str | None = Field(default=None, description="The IP address the request was sent to (the URL's "
                                "host, resolved once and checked)")
    late: bool = Field(default=False, description="The result came after a newer attempt had begun (its lease "
                       "had expired): logged, but it did not change the delivery")


class DeliveryOut(BaseModel):
    id: int
    event_id: str
    event_type: str
    endpoint_id: str
    status: Literal["pending", "delivered", "failed"]
    attempts: int
    next_attempt_at: datetime | None
    last_status_code: int | None
    last_error: str | None
    last_latency_ms: int | None
    delivered_at: datetime | None
    created_at: datetime
    attempt_log: list[AttemptOut]
