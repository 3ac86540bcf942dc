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
    webhook_timeout_seconds: float = Field(default=10.0, description="Per delivery attempt.")
    webhook_retry_base_seconds: float = Field(default=30.0, description="First retry delay; doubles each attempt.")
    webhook_retry_max_seconds: float = Field(default=6 * 3600.0, description="Longest delay between two attempts.")
    webhook_retry_window_hours: float = Field(default=24.0, description="Retry for this long, then mark failed.")
    webhook_disable_after_hours: float = Field(default=72.0, description="Disable an endpoint failing this long.")
    dispatch_interval_seconds: float = Field(default=1.0, description="How often the dispatcher looks for work.")
    revalue_interval_seconds: float = Field(default=300.0, description="How often date-driven changes are applied.")
    metrics_key: str | None = Field(default=None, description="When set, GET /metrics needs 'Bearer <key>'.")
    log_level: str = Field(default="INFO")


@lru_cache
def get_settings() -> Settings:
    return Settings()
