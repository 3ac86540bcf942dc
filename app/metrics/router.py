"""`GET /metrics` in the Prometheus text format. Open unless COVERWATCH_METRICS_KEY is set."""

from __future__ import annotations

import hmac

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest

from app.core.errors import Unauthorized
from app.metrics import MULTIPROCESS
from app.metrics.collector import StoredCollector

router = APIRouter(tags=["health"])


def render(request: Request) -> bytes:
    if MULTIPROCESS:
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    else:
        registry = REGISTRY
    stored = CollectorRegistry(auto_describe=False)
    stored.register(StoredCollector(request.app.state.db))  # type: ignore[arg-type]
    return generate_latest(registry) + generate_latest(stored)


@router.get("/metrics", response_class=Response,
            responses={200: {"content": {CONTENT_TYPE_LATEST: {"schema": {"type": "string"}}},
                             "description": "Prometheus text format"}})
def metrics(request: Request) -> Response:
    """Prometheus metrics: requests, ingest, exposure per tenant, open alerts, webhooks, scheduled jobs."""
    key = request.app.state.settings.metrics_key
    if key:
        given = request.headers.get("authorization", "").partition(" ")[2].strip()
        if not hmac.compare_digest(given.encode(), key.encode()):
            raise Unauthorized("This endpoint needs 'Authorization: Bearer <COVERWATCH_METRICS_KEY>'.",
                               headers={"WWW-Authenticate": 'Bearer realm="metrics"'})
    return Response(render(request), media_type=CONTENT_TYPE_LATEST)
