"""Typed settings, read from COVERWATCH_* environment variables."""

from __future__ import annotations

from datetime import date
from functools import lru_cache

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="COVERWATCH_", extra="ignore")

    database_url: str = Field(
        default="sqlite:///./coverwatch.db",
        description="SQLAlchemy URL. SQLite file by default; postgresql+psycopg://... in production.",
    )
    today: date | None = Field(
        default=None, description="Pin the service's 'today' (YYYY-MM-DD) for demos, acceptance runs and tests."
    )
    timezone: str = Field(default="Europe/Paris", description="Default time zone for 'today'.")
    max_body_bytes: int = Field(default=10 * 1024 * 1024, description="Request bodies above this get a 413.")
    max_batch_items: int = Field(default=5000, description="Items per batch request; more get a 413.")
    idempotency_ttl_hours: int = Field(default=48, description="How long Idempotency-Key replays are kept.")
    scheduler_enabled: bool = Field(default=True, description="Run the periodic jobs in this process.")
    webhook_allow_private: bool = Field(
        default=False, description="Allow webhook URLs on loopback/private addresses (tests, demos)."
    )
    log_level: str = Field(default="INFO")


@lru_cache
def get_settings() -> Settings:
    return Settings()
