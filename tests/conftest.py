"""Test harness: every API test runs against SQLite and PostgreSQL, both migrated by Alembic.

Isolation comes from tenancy itself: each test gets its own fresh tenant, so tests
share one migrated database per backend and never see each other's rows.
PostgreSQL: COVERWATCH_TEST_POSTGRES_URL, default postgresql+psycopg://postgres@127.0.0.1:5432/test;
each xdist worker migrates its own schema there.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from app.core.config import Settings
from app.core.db import Database
from app.main import create_app
from app.migrate import upgrade
from app.tenants.service import create_tenant
from tests.helpers import TEST_SECRET_KEY

PG_DEFAULT = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
VALUATION_DATE = date(2026, 3, 20)


def _worker() -> str:
    return os.environ.get("PYTEST_XDIST_WORKER", "main")


def fresh_postgres_schema(prefix: str = "cw_test") -> str:
    """A URL to an empty schema of the test database, one per xdist worker and prefix."""
    base = make_url(os.environ.get("COVERWATCH_TEST_POSTGRES_URL", PG_DEFAULT))
    schema = f"{prefix}_{_worker()}"
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    admin.dispose()
    return base.update_query_dict({"options": f"-csearch_path={schema}"}).render_as_string(hide_password=False)


@pytest.fixture(scope="session", params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> str:
    if request.param == "sqlite":
        path: Path = tmp_path_factory.mktemp("db") / "coverwatch.db"
        url = f"sqlite:///{path}"
    else:
        url = fresh_postgres_schema()
    upgrade(url)
    return url


@pytest.fixture(scope="session")
def database(database_url: str) -> Iterator[Database]:
    db = Database(database_url)
    yield db
    db.dispose()


@pytest.fixture(scope="session")
def app(database: Database) -> FastAPI:
    # Webhook receivers in the tests listen on 127.0.0.1 only: the allow-list opens loopback, nothing else.
    settings = Settings(database_url=database.url, today=VALUATION_DATE, scheduler_enabled=False,
                        webhook_allowed_networks="127.0.0.0/8", secret_key=TEST_SECRET_KEY)
    return create_app(settings, database)


@pytest.fixture
def clock(app: FastAPI) -> Iterator[ClockControl]:
    """Move the service's 'today' within a test; restored afterwards."""
    control = ClockControl(app)
    yield control
    app.state.settings.today = VALUATION_DATE


class ClockControl:
    def __init__(self, app: FastAPI) -> None:
        self.app = app

    def set(self, day: date) -> None:
        self.app.state.settings.today = day


@dataclass
class Tenant:
    id: str
    key: str
    client: TestClient


@pytest.fixture
def make_tenant(app: FastAPI, database: Database) -> Iterator:  # type: ignore[type-arg]
    clients: list[TestClient] = []

    def make(name: str = "Acme SAS", currency: str = "EUR") -> Tenant:
        with database.session() as session, session.begin():
            tenant, key = create_tenant(session, name, currency)
        make.created.append(tenant.id)  # type: ignore[attr-defined]
        client = TestClient(app, headers={"Authorization": f"Bearer {key}"}, raise_server_exceptions=False)
        clients.append(client)
        return Tenant(tenant.id, key, client)

    make.created = []  # type: ignore[attr-defined]  # this test's tenants (the dispatch fixture sends theirs only)
    yield make
    for c in clients:
        c.close()


@pytest.fixture
def tenant(make_tenant) -> Tenant:  # type: ignore[no-untyped-def]
    return make_tenant()


@pytest.fixture
def api(tenant: Tenant) -> TestClient:
    """An admin client of a fresh tenant."""
    return tenant.client


@pytest.fixture
def anon(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c


@pytest.fixture
def receiver() -> Iterator:  # type: ignore[type-arg]
    from tests.receiver import Receiver

    r = Receiver()
    yield r
    r.close()


@pytest.fixture
def dispatch(app: FastAPI, database: Database, make_tenant):  # type: ignore[no-untyped-def]
    """Run the webhook dispatcher once, as the scheduler would, for this test's tenants only (a delivery
    left pending by an earlier test never reaches a receiver of this one that got its old port)."""
    from app.webhooks.dispatcher import dispatch_pending

    return lambda **kw: dispatch_pending(database, app.state.settings, tenant_ids=make_tenant.created, **kw)


@pytest.fixture
def settings_override(app: FastAPI) -> Iterator:  # type: ignore[type-arg]
    """Change service settings for one test (restored after)."""
    saved = app.state.settings.model_copy()

    def set_(**values: object) -> None:
        for k, v in values.items():
            setattr(app.state.settings, k, v)

    yield set_
    for k in type(saved).model_fields:
        setattr(app.state.settings, k, getattr(saved, k))
