from __future__ import annotations

from datetime import date, datetime

from pydantic import BaseModel, Field

from app.core.fields import StrictModel
from app.core.security import Scope


class ApiKeyIn(StrictModel):
    name: str = Field(min_length=1, max_length=200)
    scope: Scope


class ApiKeyOut(BaseModel):
    id: str
    name: str
    scope: Scope
    prefix: str = Field(description="The first characters of the key, to recognise it")
    created_at: datetime
    revoked_at: datetime | None


class ApiKeyCreated(ApiKeyOut):
    key: str = Field(description="The key itself: shown once, never again")


class MeOut(BaseModel):
    tenant_id: str
    tenant_name: str
    currency: str
    locale: str = Field(description="BCP 47 tag amounts and dates are shown with (PUT /v1/settings)")
    timezone: str
    today: date = Field(description="The valuation date the service uses now")
    key_id: str
    key_name: str
    scope: Scope
