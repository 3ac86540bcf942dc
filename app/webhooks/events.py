"""The events Coverwatch sends to webhook receivers, as the OpenAPI document's `webhooks` section lists them.

Every body is the Standard Webhooks envelope `{type, timestamp, tenant_id, data}`, signed with the
`webhook-id`, `webhook-timestamp` and `webhook-signature` headers.
"""


from datetime import datetime
from typing import Annotated, Literal

from fastapi import FastAPI, Header
from pydantic import BaseModel, Field

from app.alerts.schemas import AlertOut, ClaimOut


class _Envelope(BaseModel):
    timestamp: datetime = Field(description="When the event happened (UTC)")
    tenant_id: str = Field(description="The insured company (tenant) the event is about")


class AlertEvent(_Envelope):
    type: Literal["alert.opened", "alert.acknowledged", "alert.resolved"]
    data: AlertOut


class ClaimFiledEvent(_Envelope):
    type: Literal["claim.filed"]
    data: ClaimOut


class EndpointDisabledData(BaseModel):
    endpoint_id: str
    url: str
    reason: str


class EndpointDisabledEvent(_Envelope):
    type: Literal["endpoint.disabled"]
    data: EndpointDisabledData


class PingData(BaseModel):
    endpoint_id: str
    message: str


class PingEvent(_Envelope):
    type: Literal["ping"]
    data: PingData


WebhookId = Annotated[str, Header(alias="webhook-id", description="Unique per event: de-duplicate on it")]
WebhookTimestamp = Annotated[str, Header(alias="webhook-timestamp", description="Unix seconds of the attempt")]
WebhookSignature = Annotated[str, Header(
    alias="webhook-signature",
    description="`v1,<base64 HMAC-SHA256>` of `id.timestamp.body`; during a secret rotation's grace, two "
    "signatures separated by a space")]

_ANSWER = {"description": "Any 2xx acknowledges the event; anything else (or no answer within the timeout) is "
           "retried with exponential backoff"}


def document(app: FastAPI) -> None:
    """Register the events in `app.webhooks` (documentation only: Coverwatch sends them, it does not serve them)."""
    hooks = app.webhooks

    def _doc(name: str, summary: str, model: type[BaseModel]) -> None:
        def receiver(body: model, webhook_id: WebhookId, webhook_timestamp: WebhookTimestamp,  # type: ignore[valid-type]
                     webhook_signature: WebhookSignature) -> None:
            return None

        receiver.__name__ = name.replace(".", "_")
        hooks.post(name, summary=summary, status_code=200, responses={200: _ANSWER}, operation_id=f"webhook-{name}",
                   response_model=None)(receiver)

    _doc("alert.opened", "An alert was raised", AlertEvent)
    _doc("alert.acknowledged", "An alert was acknowledged", AlertEvent)
    _doc("alert.resolved", "An alert was resolved (its condition cleared, or by hand)", AlertEvent)
    _doc("claim.filed", "A claim was filed", ClaimFiledEvent)
    _doc("endpoint.disabled", "A receiver failing for too long was disabled", EndpointDisabledEvent)
    _doc("ping", "A test event (POST /v1/webhook-endpoints/{id}/test)", PingEvent)
