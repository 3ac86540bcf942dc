"""Migrations on SQLite and PostgreSQL: empty -> head -> base -> head, and a book written at an older revision
(raw SQL, in that revision's columns, not through today's models) upgraded to head with every figure intact."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from fastapi.testclient import TestClient
from sqlalchemy import Engine, create_engine, inspect, text

from app.core.config import Settings
from app.core.db import Base, Database
from app.core.security import hash_key
from app.main import create_app
from app.migrate import alembic_config, head_revision, upgrade
from tests.conftest import fresh_postgres_schema
from tests.helpers import TEST_SECRET_KEY, ok

# The book below is written in this revision's columns (webhook secrets encrypted, before references widened to
# 200 characters and invoices and credit notes were numbered apart): the upgrade runs every later migration on it,
# including the one that rebuilds the invoices table, and any migration added after today's head.
BOOK_REVISION = "7c1e5a9d2b40"


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'migrations.db'}"
    return fresh_postgres_schema("cw_migrations")


@pytest.fixture
def engine(empty_url: str) -> Iterator[Engine]:
    eng = create_engine(empty_url)
    yield eng
    eng.dispose()


def _revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def _tables(engine: Engine) -> set[str]:
    return set(inspect(engine).get_table_names()) - {"alembic_version"}


def test_empty_to_head_to_base_and_back(empty_url: str, engine: Engine) -> None:
    upgrade(empty_url)
    assert _revision(engine) == head_revision()
    with engine.connect() as conn:
        assert compare_metadata(MigrationContext.configure(conn, opts={"compare_type": False}), Base.metadata) == []
    assert _tables(engine) == set(Base.metadata.tables)

    command.downgrade(alembic_config(empty_url), "base")
    assert _revision(engine) is None
    assert _tables(engine) == set()

    upgrade(empty_url)
    assert _revision(engine) == head_revision()
    assert _tables(engine) == set(Base.metadata.tables)


def test_every_migration_steps_down_and_up_again(empty_url: str, engine: Engine) -> None:
    """Each revision's downgrade undoes exactly its upgrade: down one step and up again, from head to base."""
    revisions = [s.revision for s in ScriptDirectory.from_config(alembic_config(empty_url)).walk_revisions()]
    upgrade(empty_url)
    cfg = alembic_config(empty_url)
    for revision in revisions:  # head first
        command.downgrade(cfg, "-1")
        command.upgrade(cfg, revision)
        assert _revision(engine) == revision
        command.downgrade(cfg, "-1")
    assert _revision(engine) is None and _tables(engine) == set()


def _write_old_book(engine: Engine, tenant_id: str, key: str) -> None:
    sqlite = engine.dialect.name == "sqlite"

    def money(value: str, scale: int = 4) -> object:  # the revision's storage: scaled integers on SQLite
        return int(Decimal(value).scaleb(scale)) if sqlite else Decimal(value)

    def ratio(value: str) -> object:
        return money(value, 6)

    now = datetime(2026, 3, 1, 9, 30, tzinfo=UTC)
    stamp = now.replace(tzinfo=None) if sqlite else now
    statements = [
        ("INSERT INTO tenants (id, name, currency, exposure_version, created_at, timezone, utilisation_threshold,"
         " claim_lead_days, limit_expiry_notice_days, daily_scan_hour, locale) VALUES (:t, 'Legacy SARL', 'EUR', 3,"
         " :now, 'Europe/Paris', :thr, '[30, 7]', 30, 6, 'de-DE')", {"thr": ratio("0.8")}),
        ("INSERT INTO api_keys (id, name, scope, prefix, key_hash, created_at, tenant_id) VALUES"
         " (:k, 'old admin', 'admin', :prefix, :hash, :now, :t)",
         {"k": str(uuid.uuid4()), "prefix": key[:10], "hash": hash_key(key)}),
        ("INSERT INTO policies (id, ref, insurer, kind, currency, starts_on, ends_on, indemnity_rate,"
         " max_credit_period_days, claim_deadline_days, covered_countries, excluded_countries, country_overrides,"
         " top_up_countries, follows_discretionary, created_at, updated_at, tenant_id) VALUES (9101, 'WT-OLD',"
         " 'Allianz Trade', 'whole_turnover', 'EUR', :jan1, :dec31, :rate, 120, 60, '[]', '[]', '{}', '[]', :no,"
         " :now, :now, :t)", {"rate": ratio("0.90"), "jan1": date(2026, 1, 1), "dec31": date(2026, 12, 31),
                              "no": False}),
        ("INSERT INTO buyers (id, ref, name, country, registration_id, created_at, updated_at, tenant_id) VALUES"
         " (9201, 'LEG 01/A', 'Legacy Buyer GmbH', 'DE', 'HRB 1234', :now, :now, :t)", {}),
        ("INSERT INTO limit_decisions (id, policy_id, buyer_id, amount, status, effective_from, source, created_at,"
         " tenant_id) VALUES (9301, 9101, 9201, :amount, 'granted', :jan1, 'insurer', :now, :t)",
         {"amount": money("20000"), "jan1": date(2026, 1, 1)}),
        ("INSERT INTO invoices (id, ref, buyer_id, kind, currency, amount, issue_date, due_date, original_due_date,"
         " applies_to, open_balance, revision, created_at, updated_at, tenant_id, settled_on) VALUES"
         " (9401, 'FA 2025/001', 9201, 'invoice', 'EUR', :amount, :issued, :due, :due, NULL, :open, 2, :now, :now,"
         " :t, NULL)", {"amount": money("1000.00"), "open": money("600.00"), "issued": date(2026, 2, 1),
                        "due": date(2026, 3, 31)}),
        ("INSERT INTO invoices (id, ref, buyer_id, kind, currency, amount, issue_date, due_date, original_due_date,"
         " applies_to, open_balance, revision, created_at, updated_at, tenant_id, settled_on) VALUES"
         " (9402, 'AV 2025/001', 9201, 'credit_note', 'EUR', :amount, :issued, :issued, :issued, 'FA 2025/001', 0,"
         " 1, :now, :now, :t, :issued)", {"amount": money("100.00"), "issued": date(2026, 2, 10)}),
        ("INSERT INTO payments (id, ref, buyer_id, currency, amount, received_on, unapplied, body, created_at,"
         " updated_at, tenant_id) VALUES (9501, 'VIR-77', 9201, 'EUR', :amount, :on, 0, :body, :now, :now, :t)",
         {"amount": money("300.00"), "on": date(2026, 2, 20),
          "body": '{"buyer_ref": "LEG 01/A", "amount": "300.00", "currency": "EUR", "received_on": "2026-02-20"}'}),
        ("INSERT INTO allocations (id, buyer_id, invoice_id, payment_id, credit_note_id, amount, explicit,"
         " created_at, tenant_id) VALUES (9601, 9201, 9401, NULL, 9402, :cn, :no, :now, :t),"
         " (9602, 9201, 9401, 9501, NULL, :pay, :no, :now, :t)",
         {"cn": money("100.00"), "pay": money("300.00"), "no": False}),
        ("INSERT INTO alerts (id, type, subject, state, buyer_id, buyer_ref, country, details, opened_at, opened_on,"
         " tenant_id, acknowledged_at, acknowledged_by, acknowledged_note) VALUES (9701, 'utilisation_high',"
         " 'buyer:9201', 'acknowledged', 9201, 'LEG 01/A', 'DE', '{\"utilisation\": \"0.85\"}', :now, :opened, :t,"
         " :now, 'old admin', 'called the buyer')", {"opened": date(2026, 3, 1)}),
    ]
    with engine.begin() as conn:
        for sql, params in statements:
            conn.execute(text(sql), {"t": tenant_id, "now": stamp, **params})


def test_a_book_written_at_an_older_revision_upgrades_intact(empty_url: str, engine: Engine) -> None:
    upgrade(empty_url, BOOK_REVISION)
    tenant_id, key = str(uuid.uuid4()), "cw_legacy_admin_key_0123456789abcdef"
    _write_old_book(engine, tenant_id, key)
    upgrade(empty_url)
    assert _revision(engine) == head_revision()

    settings = Settings(database_url=empty_url, today=date(2026, 3, 20), scheduler_enabled=False,
                        secret_key=TEST_SECRET_KEY)
    database = Database(empty_url)
    try:
        with TestClient(create_app(settings, database), headers={"Authorization": f"Bearer {key}"}) as api:
            me = ok(api.get("/v1/me"))
            assert (me["tenant_name"], me["currency"], me["locale"], me["key_name"]) == (
                "Legacy SARL", "EUR", "de-DE", "old admin")
            assert ok(api.get("/v1/buyers"))["items"][0]["registration_id"] == "HRB 1234"
            inv = ok(api.get("/v1/invoices/FA%202025%2F001"))
            assert (inv["amount"], inv["open_balance"], inv["kind"], inv["due_date"]) == (
                "1000.00", "600.00", "invoice", "2026-03-31")
            cn = ok(api.get("/v1/credit-notes/AV%202025%2F001"))
            assert (cn["amount"], cn["applies_to"]) == ("100.00", "FA 2025/001")
            pay = ok(api.get("/v1/payments/VIR-77"))
            assert (pay["amount"], pay["unapplied"]) == ("300.00", "0.00")
            policy = ok(api.get("/v1/policies/WT-OLD"))
            assert (policy["indemnity_rate"], policy["claim_deadline_days"], policy["premium_rate"]) == (
                "0.9", 60, None)
            limits = ok(api.get("/v1/buyers/LEG%2001%2FA/limits"))
            assert [d["amount"] for d in limits["decisions"]] == ["20000.00"]
            alert = ok(api.get("/v1/alerts"))["items"][0]
            assert (alert["state"], alert["acknowledged_by"], alert["acknowledged_note"]) == (
                "acknowledged", "old admin", "called the buyer")
            assert ok(api.get("/v1/settings"))["utilisation_threshold"] == "0.8"
            # What the upgrade allows: a credit note numbered like an invoice, and a 200-character ref.
            body = {"buyer_ref": "LEG 01/A", "kind": "credit_note", "currency": "EUR", "amount": "50.00",
                    "issue_date": "2026-03-05", "due_date": "2026-03-05", "applies_to": "FA 2025/001"}
            ok(api.put("/v1/invoices/FA%202025%2F001", json=body), 201)
            assert ok(api.get("/v1/invoices/FA%202025%2F001", params={"kind": "invoice"}))["open_balance"] == "550.00"
            ok(api.put(f"/v1/buyers/{'L' * 200}", json={"name": "Long", "country": "FR"}), 201)
    finally:
        database.dispose()
