"""Standard Webhooks signing: secrets, and the headers of one attempt."""

from __future__ import annotations

import base64
import secrets
from datetime import UTC, datetime

from standardwebhooks import Webhook


def new_secret() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


def signed_headers(secret: str, msg_id: str, body: str, at: datetime) -> dict[str, str]:
    """Headers for sending `body` (the exact bytes) at `at`; `at` must be UTC (standardwebhooks assumes it)."""
    at = at.astimezone(UTC)
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": Webhook(secret).sign(msg_id, at, body),
        "content-type": "application/json",
        "user-agent": "Coverwatch-Webhooks/1",
    }
