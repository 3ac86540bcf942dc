"""The committed OpenAPI document and the migrations both match the code."""

from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from app.core.db import Base
from app.openapi import render

ROOT = Path(__file__).resolve().parent.parent


def test_openapi_json_is_generated_from_the_code():
    committed = (ROOT / "openapi" / "openapi.json").read_text()
    assert committed == render(), "openapi/openapi.json is stale: run `make openapi` (coverwatch openapi)"


def test_migrations_create_exactly_the_models(database):
    with database.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": False}), Base.metadata)
    assert diff == []


def test_health_and_readiness(anon):
    assert anon.get("/healthz").json() == {"status": "ok"}
    ready = anon.get("/readyz")
    assert ready.status_code == 200 and ready.json()["status"] == "ready"
