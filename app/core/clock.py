"""The one clock: every notion of 'today' in Coverwatch comes from here."""

from __future__ import annotations

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

from app.core.config import Settings


def utcnow() -> datetime:
    """Wall-clock instant for audit timestamps (created_at, recorded_at)."""
    return datetime.now(UTC)


def today(settings: Settings, tz: str | None = None) -> date:
    """The valuation date: COVERWATCH_TODAY when pinned, else the date in the tenant's time zone."""
    if settings.today is not None:
        return settings.today
    return datetime.now(ZoneInfo(tz or settings.timezone)).date()
