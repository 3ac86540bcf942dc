"""The request context handed to services: session, tenant, valuation date, settings."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.orm import Session

from app.core.clock import today
from app.core.config import Settings
from app.core.db import SessionDep
from app.core.security import Principal, authenticate
from app.tenants.models import Tenant


@dataclass
class Context:
    session: Session
    tenant: Tenant
    today: date
    settings: Settings
    # A bulk import: ledger writes mark their buyers' exposure stale and queue one revaluation, run once at the
    # end of the import (app.imports.service), instead of re-walking each buyer in every batch.
    defer_exposure: bool = False


def tenant_today(settings: Settings, tenant: Tenant) -> date:
    return today(settings, tenant.timezone)


async def get_context(
    request: Request, session: SessionDep, principal: Annotated[Principal, Depends(authenticate)]
) -> Context:
    """No I/O: run on the event loop (app.core.db.get_session)."""
    settings: Settings = request.app.state.settings
    return Context(session, principal.tenant, tenant_today(settings, principal.tenant), settings)


ContextDep = Annotated[Context, Depends(get_context)]


def system_context(session: Session, tenant: Tenant, settings: Settings) -> Context:
    """A context for work outside a request (CLI, scheduled jobs): the session is bound to the tenant."""
    from app.core.db import bind_tenant

    bind_tenant(session, tenant.id)
    return Context(session, tenant, tenant_today(settings, tenant), settings)
