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


def tenant_today(settings: Settings, tenant: Tenant) -> date:
    return today(settings, getattr(tenant, "timezone", None))


def get_context(
    request: Request, session: SessionDep, principal: Annotated[Principal, Depends(authenticate)]
) -> Context:
    settings: Settings = request.app.state.settings
    return Context(session, principal.tenant, tenant_today(settings, principal.tenant), settings)


ContextDep = Annotated[Context, Depends(get_context)]
