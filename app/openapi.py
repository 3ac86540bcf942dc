"""The OpenAPI document, rendered deterministically (committed as openapi/openapi.json)."""

from __future__ import annotations

import json

from app.core.config import Settings
from app.core.db import Database


def render() -> str:
    from app.main import create_app

    app = create_app(Settings(database_url="sqlite://", scheduler_enabled=False), Database("sqlite://"))
    return json.dumps(app.openapi(), indent=2, sort_keys=True) + "\n"
