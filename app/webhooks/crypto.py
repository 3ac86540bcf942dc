"""Webhook signing secrets at rest: encrypted with Fernet (AES-128-CBC + HMAC-SHA256, `cryptography`).

The key comes from `COVERWATCH_SECRET_KEY`: any string of at least 32 characters (e.g.
`python -c "import secrets; print(secrets.token_urlsafe(32))"`), from which the Fernet key is derived
with HKDF-SHA256. Several keys, comma-separated, rotate the key: the first encrypts, every one decrypts.

`coverwatch reencrypt-secrets` then rewrites every secret with the first key, after which the old one can go.

Unset, a fixed development key (public: it is in this file) is used when the database is SQLite, so
`make run` and the demo work with nothing configured; with any other database (production) using a
secret is a `SecretKeyMissing` error that says what to set, and `coverwatch serve` refuses to start.
"""

from __future__ import annotations

import base64
import logging
import os
from functools import lru_cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.core.config import Settings

log = logging.getLogger("coverwatch.webhooks")

DEV_KEY = "coverwatch-development-key-never-use-in-production"
MIN_KEY_LENGTH = 32


class SecretKeyMissing(RuntimeError):
    """Production configuration without COVERWATCH_SECRET_KEY (or with one too short to be a key)."""


def _fernet(key: str) -> Fernet:
    derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"coverwatch webhook secrets v1").derive(
        key.encode())
    return Fernet(base64.urlsafe_b64encode(derived))


@lru_cache(maxsize=8)
def _box(keys: tuple[str, ...]) -> MultiFernet:
    return MultiFernet([_fernet(k) for k in keys])


def resolve_keys(secret_key: str | None, database_url: str) -> tuple[str, ...]:
    """The keys in force: the configured ones, or the development key on SQLite; SecretKeyMissing otherwise."""
    keys = tuple(k.strip() for k in (secret_key or "").split(",") if k.strip())
    if not keys:
        if database_url.startswith("sqlite"):
            return (DEV_KEY,)
        raise SecretKeyMissing(
            "COVERWATCH_SECRET_KEY is not set. It encrypts webhook secrets at rest and is required with this "
            "database; set it to a random string of at least 32 characters, e.g. the output of "
            "`python -c \"import secrets; print(secrets.token_urlsafe(32))\"`, and keep it (losing it loses the "
            "webhook secrets)."
        )
    if short := [k for k in keys if len(k) < MIN_KEY_LENGTH]:
        raise SecretKeyMissing(f"COVERWATCH_SECRET_KEY: {len(short)} key(s) shorter than {MIN_KEY_LENGTH} characters.")
    return keys


def settings_keys(settings: Settings) -> tuple[str, ...]:
    raw = settings.secret_key.get_secret_value() if settings.secret_key is not None else None
    return resolve_keys(raw, settings.database_url)


def check_configuration(settings: Settings) -> None:
    """Fail fast at start-up (coverwatch serve): raises SecretKeyMissing; warns when the dev key is in use,
    and when the setting the allow-list replaced is still set (it is ignored: private targets stay refused)."""
    if settings_keys(settings) == (DEV_KEY,):
        log.warning("COVERWATCH_SECRET_KEY is not set: webhook secrets are encrypted with the public development "
                    "key (acceptable for a local SQLite demo only)")
    if os.environ.get("COVERWATCH_WEBHOOK_ALLOW_PRIVATE"):
        log.warning("COVERWATCH_WEBHOOK_ALLOW_PRIVATE is no longer read: list the networks webhooks may reach in "
                    "COVERWATCH_WEBHOOK_ALLOWED_NETWORKS (e.g. 10.1.0.0/16); metadata addresses stay refused")


def encrypt_with(keys: tuple[str, ...], plaintext: str) -> str:
    return _box(keys).encrypt(plaintext.encode()).decode()


def decrypt_with(keys: tuple[str, ...], token: str) -> str:
    try:
        return _box(keys).decrypt(token.encode()).decode()
    except InvalidToken as exc:
        raise SecretKeyMissing(
            "A webhook secret cannot be decrypted with COVERWATCH_SECRET_KEY: the key changed? List the old key "
            "after the new one (comma-separated) to keep reading secrets encrypted with it."
        ) from exc


def encrypt(settings: Settings, plaintext: str) -> str:
    return encrypt_with(settings_keys(settings), plaintext)


def decrypt(settings: Settings, token: str) -> str:
    return decrypt_with(settings_keys(settings), token)


def reencrypt_all(session: Session, settings: Settings) -> int:
    """Encrypt every stored webhook secret with the first configured key (after `COVERWATCH_SECRET_KEY=new,old`);
    once done, the old key can be dropped. Returns how many endpoints were rewritten."""
    from app.webhooks.models import WebhookEndpoint

    box = _box(settings_keys(settings))
    count = 0
    for endpoint in session.scalars(select(WebhookEndpoint).order_by(WebhookEndpoint.id).with_for_update()):
        endpoint.secret_encrypted = box.rotate(endpoint.secret_encrypted.encode()).decode()
        if endpoint.previous_secret_encrypted:
            endpoint.previous_secret_encrypted = box.rotate(endpoint.previous_secret_encrypted.encode()).decode()
        count += 1
    session.flush()
    return count
