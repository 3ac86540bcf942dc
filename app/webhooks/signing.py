"""Standard Webhooks signing: secrets, and the headers of one attempt."""

from __future__ import annotations

import base64
import secrets
from collections.abc import Sequence
from datetime import UTC, datetime

from standardwebhooks import Webhook


def new_secret() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


def signed_headers(secrets_: Sequence[str], msg_id: str, body: str, at: datetime) -> dict[str, str]:
    """Headers for sending `body` (the exact bytes) at `at`, signed with every secret in `secrets_` (the
    current one first; during a rotation's grace period the previous one too): `webhook-signature` holds
    one space-separated `v1,<base64>` per secret, and a receiver accepts the message if any verifies.
    `at` must be UTC (standardwebhooks assumes it)."""
    at = at.astimezone(UTC)
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": " ".join(Webhook(s).sign(msg_id, at, body) for s in secrets_),
        "content-type": "application/json",
        "user-agent": "Coverwatch-Webhooks/1",
    }
