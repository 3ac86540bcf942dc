"""Webhook secrets: rotation with a grace period, encryption at rest, the key's configuration, the
migration of plaintext rows; and no API key or webhook secret in logs, error bodies or lists."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from pydantic import SecretStr
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from app.core.config import Settings
from app.core.db import Database
from app.core.types import Ratio, UtcDateTime
from app.migrate import alembic_config, upgrade
from app.webhooks import crypto
from tests.helpers import TEST_SECRET_KEY, ok

REVISION = "7c1e5a9d2b40"  # the migration that encrypts the secrets


def _endpoint(api, receiver) -> dict:
    return ok(api.post("/v1/webhook-endpoints", json={"url": receiver.url}), 201)


def _ping_and_receive(api, receiver, dispatch, endpoint_id: str):  # type: ignore[no-untyped-def]
    ok(api.post(f"/v1/webhook-endpoints/{endpoint_id}/test"), 202)
    dispatch()
    return receiver.received[-1]


def _verifies(secret: str, got) -> bool:  # type: ignore[no-untyped-def]
    try:
        Webhook(secret).verify(got.body, got.headers)
        return True
    except WebhookVerificationError:
        return False


def test_rotation_signs_with_the_previous_secret_too_for_the_grace_period(api, receiver, dispatch):
    created = _endpoint(api, receiver)
    first = created["secret"]
    assert created["previous_secret_signs_until"] is None

    rotated = ok(api.post(f"/v1/webhook-endpoints/{created['id']}/rotate-secret"))
    second = rotated["secret"]
    until = datetime.fromisoformat(rotated["previous_secret_signs_until"])
    assert timedelta(hours=23, minutes=59) < until - datetime.now(UTC) <= timedelta(hours=24)  # default grace
    got = _ping_and_receive(api, receiver, dispatch, created["id"])
    assert len(got.headers["webhook-signature"].split(" ")) == 2
    assert _verifies(second, got) and _verifies(first, got)  # a receiver on either secret accepts it

    # After a leak: no grace, the old secret stops signing at once.
    third = ok(api.post(f"/v1/webhook-endpoints/{created['id']}/rotate-secret", json={"grace_hours": 0}))
    assert third["previous_secret_signs_until"] is None
    got = _ping_and_receive(api, receiver, dispatch, created["id"])
    assert len(got.headers["webhook-signature"].split(" ")) == 1
    assert _verifies(third["secret"], got) and not _verifies(second, got) and not _verifies(first, got)


def test_the_previous_secret_stops_signing_when_the_grace_period_ends(api, receiver, dispatch, settings_override):
    settings_override(webhook_secret_grace_hours=0.5 / 3600)  # half a second
    created = _endpoint(api, receiver)
    rotated = ok(api.post(f"/v1/webhook-endpoints/{created['id']}/rotate-secret"))
    time.sleep(0.6)
    got = _ping_and_receive(api, receiver, dispatch, created["id"])
    assert _verifies(rotated["secret"], got) and not _verifies(created["secret"], got)
    assert ok(api.get(f"/v1/webhook-endpoints/{created['id']}"))["previous_secret_signs_until"] is None


def test_secrets_are_stored_encrypted(api, receiver, database, app):
    created = _endpoint(api, receiver)
    rotated = ok(api.post(f"/v1/webhook-endpoints/{created['id']}/rotate-secret"))
    with database.engine.connect() as conn:
        row = conn.execute(text("SELECT * FROM webhook_endpoints WHERE id = :id"),
                           {"id": created["id"]}).mappings().one()
    stored = " ".join(str(v) for v in row.values())
    for secret in (created["secret"], rotated["secret"]):
        assert secret not in stored and secret.removeprefix("whsec_") not in stored
    assert crypto.decrypt(app.state.settings, row["secret_encrypted"]) == rotated["secret"]
    assert crypto.decrypt(app.state.settings, row["previous_secret_encrypted"]) == created["secret"]
    # Another key cannot read them.
    other = Settings(database_url="postgresql://x/y", secret_key="another-key-of-at-least-32-characters-long")
    with pytest.raises(crypto.SecretKeyMissing, match="cannot be decrypted"):
        crypto.decrypt(other, row["secret_encrypted"])


def test_the_secret_key_can_be_rotated_by_listing_the_old_one_after_the_new():
    old, new = "old-key-0123456789-0123456789-0123456789", "new-key-0123456789-0123456789-0123456789"
    token = crypto.encrypt_with((old,), "whsec_abc")
    assert crypto.decrypt_with((new, old), token) == "whsec_abc"
    with pytest.raises(crypto.SecretKeyMissing):
        crypto.decrypt_with((old,), crypto.encrypt_with((new, old), "whsec_abc"))  # the first key encrypts


def test_production_configuration_without_a_secret_key_is_a_clear_error():
    with pytest.raises(crypto.SecretKeyMissing, match="COVERWATCH_SECRET_KEY is not set"):
        crypto.resolve_keys(None, "postgresql+psycopg://db/coverwatch")
    with pytest.raises(crypto.SecretKeyMissing, match="shorter than 32"):
        crypto.resolve_keys("short", "postgresql+psycopg://db/coverwatch")
    assert crypto.resolve_keys(None, "sqlite:///./coverwatch.db") == (crypto.DEV_KEY,)  # the demo needs nothing
    assert crypto.resolve_keys(f"{'a' * 32}, {'b' * 32}", "postgresql://x") == ("a" * 32, "b" * 32)

    env = {k: v for k, v in os.environ.items() if not k.startswith("COVERWATCH_")}
    env["COVERWATCH_DATABASE_URL"] = "postgresql+psycopg://postgres@127.0.0.1:1/none"
    done = subprocess.run([sys.executable, "-m", "app.cli", "serve", "--no-migrate", "--port", "1"], env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert "COVERWATCH_SECRET_KEY is not set" in done.stderr


def _fresh_databases(tmp_path: Path) -> list[str]:
    urls = [f"sqlite:///{tmp_path / 'migrate.db'}"]
    base = make_url(os.environ.get("COVERWATCH_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"))
    schema = f"cw_hooks_migration_{os.environ.get('PYTEST_XDIST_WORKER', 'main')}"
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    admin.dispose()
    urls.append(base.update_query_dict({"options": f"-csearch_path={schema}"}).render_as_string(hide_password=False))
    return urls


def test_the_migration_encrypts_existing_plaintext_secrets_and_back(tmp_path, monkeypatch):
    from alembic import command
    from alembic.script import ScriptDirectory

    monkeypatch.setenv("COVERWATCH_SECRET_KEY", TEST_SECRET_KEY)
    before = ScriptDirectory.from_config(alembic_config("sqlite://")).get_revision(REVISION).down_revision
    tenants = sa.table("tenants", sa.column("id"), sa.column("name"), sa.column("currency"),
                       sa.column("exposure_version"), sa.column("created_at", UtcDateTime()), sa.column("timezone"),
                       sa.column("utilisation_threshold", Ratio), sa.column("claim_lead_days", sa.JSON),
                       sa.column("limit_expiry_notice_days"), sa.column("daily_scan_hour"))
    endpoints = sa.table("webhook_endpoints", sa.column("id"), sa.column("url"), sa.column("event_types", sa.JSON),
                         sa.column("enabled"), sa.column("secret"), sa.column("created_at", UtcDateTime()),
                         sa.column("updated_at", UtcDateTime()), sa.column("tenant_id"))
    for url in _fresh_databases(tmp_path):
        upgrade(url, str(before))
        db = Database(url)
        plain = f"whsec_{uuid.uuid4().hex}"
        now = datetime.now(UTC)
        tenant_id = str(uuid.uuid4())
        with db.engine.begin() as conn:  # the tenant as that revision stores it (not today's model)
            conn.execute(tenants.insert().values(id=tenant_id, name="before", currency="EUR", exposure_version=0,
                                                 created_at=now, timezone="Europe/Paris",
                                                 utilisation_threshold=Decimal("0.9"), claim_lead_days=[14, 7, 1],
                                                 limit_expiry_notice_days=30, daily_scan_hour=6))
            conn.execute(endpoints.insert().values(id="ep_old", url="http://127.0.0.1:9/x", event_types=[],
                                                   enabled=True, secret=plain, created_at=now, updated_at=now,
                                                   tenant_id=tenant_id))
        upgrade(url, REVISION)
        with db.engine.connect() as conn:
            row = conn.execute(text("SELECT * FROM webhook_endpoints WHERE id = 'ep_old'")).mappings().one()
        assert "secret" not in row and plain not in " ".join(str(v) for v in row.values())
        assert crypto.decrypt_with((TEST_SECRET_KEY,), row["secret_encrypted"]) == plain

        command.downgrade(alembic_config(url), str(before))
        with db.engine.connect() as conn:
            assert conn.execute(text("SELECT secret FROM webhook_endpoints WHERE id = 'ep_old'")).scalar() == plain
        db.dispose()


def test_no_api_key_or_webhook_secret_in_logs_error_bodies_or_lists(app, api, tenant, receiver, dispatch, caplog,
                                                                   settings_override):
    caplog.set_level(logging.DEBUG)  # every logger, every level: httpx, httpcore, the app...
    caplog.set_level(logging.DEBUG, logger="sqlalchemy")  # SQLAlchemy sets itself to WARNING: SQL and parameters
    settings_override(webhook_retry_base_seconds=0.01, webhook_retry_max_seconds=0.01)
    secrets = [tenant.key]
    seen: list[str] = []  # every response that is not the one place a secret is shown

    def keep(response):  # type: ignore[no-untyped-def]
        seen.append(f"{response.status_code} {dict(response.headers)} {response.text}")
        return response

    # API keys: issue (with an Idempotency-Key, and its replay), list, use, revoke, use revoked, misuse.
    issued = {}
    for scope in ("read", "ingest", "admin"):
        body, idem = {"name": f"{scope} key", "scope": scope}, {"Idempotency-Key": scope}
        issued[scope] = ok(api.post("/v1/api-keys", json=body, headers=idem), 201)
        secrets.append(issued[scope]["key"])
        keep(api.post("/v1/api-keys", json=body, headers=idem))  # the replay omits the key
    keep(api.get("/v1/api-keys"))
    with TestClient(app, raise_server_exceptions=False) as anon:
        reader = {"Authorization": f"Bearer {issued['read']['key']}"}
        keep(anon.get("/v1/buyers", headers=reader))
        keep(anon.post("/v1/webhook-endpoints", json={"url": receiver.url}, headers=reader))  # 403
        keep(api.delete(f"/v1/api-keys/{issued['ingest']['id']}"))
        keep(anon.get("/v1/buyers", headers={"Authorization": f"Bearer {issued['ingest']['key']}"}))  # revoked
        keep(anon.get("/v1/buyers", headers={"Authorization": f"Basic {issued['admin']['key']}"}))

        # Webhook endpoints: create (and replay), rotate twice (with and without grace), list, read, change.
        created = ok(api.post("/v1/webhook-endpoints", json={"url": receiver.url}, headers={"Idempotency-Key": "ep"}),
                     201)
        secrets.append(created["secret"])
        keep(api.post("/v1/webhook-endpoints", json={"url": receiver.url}, headers={"Idempotency-Key": "ep"}))
        path = f"/v1/webhook-endpoints/{created['id']}"
        secrets.append(ok(api.post(f"{path}/rotate-secret", headers={"Idempotency-Key": "rot"}))["secret"])
        keep(api.post(f"{path}/rotate-secret", headers={"Idempotency-Key": "rot"}))
        secrets.append(ok(api.post(f"{path}/rotate-secret", json={"grace_hours": 0}))["secret"])
        failing = ok(api.post("/v1/webhook-endpoints", json={"url": "http://127.0.0.1:9/closed"}), 201)
        secrets.append(failing["secret"])
        keep(api.get("/v1/webhook-endpoints"))
        keep(api.get(path))
        keep(api.patch(path, json={"description": "desk"}))
        # Secrets where they do not belong: in an error, in a header, in a refused URL.
        keep(api.post("/v1/webhook-endpoints", json={"url": receiver.url, "secret": created["secret"]}))
        keep(anon.get("/v1/buyers", headers={"Authorization": f"Bearer {created['secret']}"}))

        # Deliveries: refused by the receiver, then accepted; a receiver that is not there at all.
        receiver.status = 500
        keep(api.post(f"{path}/test"))
        keep(api.post(f"/v1/webhook-endpoints/{failing['id']}/test"))
        dispatch()
        receiver.status = 200
        time.sleep(0.05)
        dispatch()
        keep(api.get("/v1/webhook-deliveries"))
    assert len(receiver.received) == 1

    logs = []
    for record in caplog.records:
        logs.append(f"{record.name} {record.getMessage()} {record.exc_text or ''} {record.stack_info or ''}")
        if record.exc_info:
            logs.append(logging.Formatter().formatException(record.exc_info))
    haystack = "\n".join(logs + seen)
    assert any(name.startswith("sqlalchemy.engine") for name in (r.name for r in caplog.records))  # saw the SQL
    assert any(r.name.startswith(("httpx", "httpcore")) for r in caplog.records)  # and the HTTP exchanges
    assert len(secrets) == 8 and len(set(secrets)) == 8
    for secret in secrets:
        for needle in {secret, secret.split("_", 1)[1]}:
            assert needle not in haystack, f"a secret leaked: {secret[:8]}..."


def test_an_unreadable_secret_fails_its_own_deliveries_only(api, receiver, database, dispatch):
    """A secret encrypted with a key no longer configured: its endpoint's deliveries fail with a clear error,
    the others go on."""
    broken = _endpoint(api, receiver)
    working = _endpoint(api, receiver)
    foreign = crypto.encrypt_with(("a-key-that-is-not-configured-0123456789",), "whsec_x")
    with database.engine.begin() as conn:
        conn.execute(text("UPDATE webhook_endpoints SET secret_encrypted = :s WHERE id = :id"),
                     {"s": foreign, "id": broken["id"]})
    for endpoint in (broken, working):
        ok(api.post(f"/v1/webhook-endpoints/{endpoint['id']}/test"), 202)
    assert dispatch() == 2
    by_endpoint = {d["endpoint_id"]: d for d in ok(api.get("/v1/webhook-deliveries"))["items"]}
    assert by_endpoint[working["id"]]["status"] == "delivered"
    assert by_endpoint[broken["id"]]["status"] == "pending"
    assert "cannot be decrypted" in by_endpoint[broken["id"]]["last_error"]
    assert len(receiver.received) == 1 and _verifies(working["secret"], receiver.received[0])


def test_changing_the_secret_key_new_then_old_reencrypt_then_drop_the_old(app, api, tenant, receiver, database,
                                                                          dispatch, settings_override):
    created = _endpoint(api, receiver)
    rotated = ok(api.post(f"/v1/webhook-endpoints/{created['id']}/rotate-secret"))  # two secrets stored
    new_key = "the-new-key-0123456789-0123456789-0123456789"
    settings_override(secret_key=SecretStr(f"{new_key},{TEST_SECRET_KEY}"))
    with database.session(tenant.id) as session, session.begin():  # this test's tenant only (a shared database)
        assert crypto.reencrypt_all(session, app.state.settings) == 1
    settings_override(secret_key=SecretStr(new_key))  # the old key is gone: the secrets are still readable
    got = _ping_and_receive(api, receiver, dispatch, created["id"])
    assert _verifies(rotated["secret"], got) and _verifies(created["secret"], got)
