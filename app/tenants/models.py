"""Tenants (insured companies) and their API keys."""

from __future__ import annotations

import secrets
from datetime import datetime
from decimal import Decimal

from sqlalchemy import JSON, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from app.core.clock import utcnow
from app.core.db import Base, TenantScoped
from app.core.types import Ratio, UtcDateTime


class Tenant(Base):
    __tablename__ = "tenants"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    currency: Mapped[str] = mapped_column(String(3))
    # Bumped whenever the tenant's stored exposure changes: the cheap ETag of every dashboard read.
    exposure_version: Mapped[int] = mapped_column(Integer, default=0)
    # Settings (GET/PUT /v1/settings): kept on the tenant row, which every request loads anyway.
    timezone: Mapped[str] = mapped_column(String(64), default="Europe/Paris")
    utilisation_threshold: Mapped[Decimal] = mapped_column(Ratio, default=Decimal("0.90"))
    claim_lead_days: Mapped[list[int]] = mapped_column(JSON, default=lambda: [14, 7, 1])
    limit_expiry_notice_days: Mapped[int] = mapped_column(Integer, default=30)
    daily_scan_hour: Mapped[int] = mapped_column(Integer, default=6)
    # BCP 47 tag the console formats amounts and dates with.
    locale: Mapped[str] = mapped_column(String(35), default="fr-FR", server_default="fr-FR")
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    # Secret key of the tenant's public ids (app/core/public_ids.py): never shown, never changed.
    public_id_key: Mapped[str] = mapped_column(String(64), default=lambda: secrets.token_hex(32))


class ApiKey(TenantScoped, Base):
    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    scope: Mapped[str] = mapped_column(String(16))
    prefix: Mapped[str] = mapped_column(String(16))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), default=None)
