"""The FastAPI application: routers, error handlers, middleware, lifespan."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from sqlalchemy import text

from app import models  # noqa: F401  (complete metadata)
from app.alerts.deadlines import router as deadlines_router
from app.alerts.router import router as alerts_router
from app.console import router as console
from app.core import errors, openapi
from app.core.config import Settings, get_settings
from app.core.db import Database
from app.core.middleware import AllowedMethods, BodySizeLimit, ETagMiddleware, UnexpectedErrors
from app.core.paths import EncodedSlashes
from app.core.retry import RetryTransient
from app.core.runtime import tune_interpreter
from app.cover.router import router as cover_router
from app.einvoices.router import router as einvoices_router
from app.exposure.history import router as history_router
from app.exposure.revaluation_router import router as revaluation_router
from app.exposure.router import NotModified, not_modified_response
from app.exposure.router import router as exposure_router
from app.imports.router import router as imports_router
from app.ledger.router import router as ledger_router
from app.metrics.middleware import MetricsMiddleware
from app.metrics.router import router as metrics_router
from app.reports.router import router as reports_router
from app.tenants.router import me_router
from app.tenants.router import router as keys_router
from app.webhooks import events as webhook_events
from app.webhooks.router import router as webhooks_router

log = logging.getLogger("coverwatch")


def _operation_id(route: APIRoute) -> str:
    tag = route.tags[0] if route.tags else "default"
    return f"{str(tag).replace(' ', '_')}-{route.name}"


def create_app(settings: Settings | None = None, database: Database | None = None) -> FastAPI:
    settings = settings or get_settings()
    db = database or Database(settings.database_url)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        tune_interpreter()
        scheduler = None
        if settings.scheduler_enabled:
            from app.scheduling.scheduler import start

            scheduler = start(db, settings)
        yield
        if scheduler is not None:
            scheduler.shutdown(wait=True)
        if database is None:
            db.dispose()

    app = FastAPI(
        title="Coverwatch",
        version="0.1.0",
        summary="Receivables exposure against primary and Top Up credit-insurance cover.",
        lifespan=lifespan,
        generate_unique_id_function=_operation_id,
        docs_url=None,  # served by the console, from local assets (no CDN)
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.db = db
    errors.install(app)
    openapi.install(app)
    app.add_exception_handler(NotModified, lambda request, exc: not_modified_response(exc))  # type: ignore[arg-type]
    app.add_middleware(RetryTransient)  # innermost: a deadlocked request is run again before anything is sent
    app.add_middleware(ETagMiddleware)
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)
    app.add_middleware(AllowedMethods)
    app.add_middleware(EncodedSlashes)
    app.add_middleware(UnexpectedErrors)  # outermost of ours: a 500 keeps the connection open
    if settings.cors_origins:  # outside AllowedMethods: a preflight OPTIONS is answered here
        app.add_middleware(
            CORSMiddleware, allow_origins=list(settings.cors_origins), allow_methods=["*"],
            allow_headers=["Authorization", "Content-Type", "Idempotency-Key", "If-None-Match"],
            expose_headers=["ETag", "Idempotent-Replayed", "Retry-After", "Allow", "Location"],  # Location: a 202's job
        )
    app.add_middleware(MetricsMiddleware)

    for router in (keys_router, me_router, ledger_router, cover_router, history_router, exposure_router,
                   alerts_router, deadlines_router, webhooks_router, einvoices_router, reports_router, imports_router,
                   metrics_router, revaluation_router):
        app.include_router(router)
    console.install(app)

    webhook_events.document(app)

    @app.get("/healthz", tags=["health"])
    def healthz() -> dict[str, str]:
        """The process is alive."""
        return {"status": "ok"}

    @app.get("/readyz", tags=["health"])
    def readyz(request: Request) -> JSONResponse:
        """The database answers and its schema is at the migrations' head."""
        from app.migrate import current_revision, head_revision

        try:
            with request.app.state.db.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
                current = current_revision(conn)
        except Exception as exc:  # the point of this endpoint is to report it
            return JSONResponse({"status": "unavailable", "detail": str(exc.__class__.__name__)}, status_code=503)
        head = head_revision()
        if current != head:
            return JSONResponse({"status": "migrating", "current": current, "head": head}, status_code=503)
        return JSONResponse({"status": "ready", "revision": current})

    return app
