"""Typed settings, read from COVERWATCH_* environment variables."""

from __future__ import annotations

import ipaddress
from datetime import date
from functools import lru_cache
from typing import Annotated, Any, Self

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


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
    scheduler_enabled: bool = Field(
        default=True, description="Run the periodic jobs (dispatch, revaluation, daily scan) in this process; false "
        "in web processes when `coverwatch worker` runs them.")
    secret_key: SecretStr | None = Field(
        default=None,
        description="Encrypts webhook secrets at rest (comma-separated: the first encrypts, all decrypt). Required "
        "unless the database is SQLite (a fixed, public development key is used there).",
    )
    webhook_allowed_networks: Annotated[tuple[IPNetwork, ...], NoDecode] = Field(
        default=(),
        description="Comma-separated networks (e.g. 127.0.0.0/8,10.1.0.0/16) webhooks may target although not "
        "public. Metadata and link-local addresses stay refused even when listed.",
    )
    cors_origins: Annotated[tuple[str, ...], NoDecode] = Field(
        default=(),
        description="Comma-separated origins (e.g. https://dashboard.example.com) whose browsers may call the API; "
        "empty: no CORS headers at all.",
    )
    webhook_ca_file: str | None = Field(
        default=None, description="A PEM file of certificate authorities trusted for https webhook receivers, in "
        "addition to the public ones (a private CA for receivers in an allowed network)."
    )
    webhook_timeout_seconds: float = Field(
        default=10.0, gt=0, description="Total deadline of one delivery attempt (connect, send, answer)."
    )
    webhook_lease_seconds: float = Field(
        default=120.0, gt=0, description="A claimed delivery is another replica's to retry after this; above the "
        "timeout."
    )
    webhook_secret_grace_hours: float = Field(
        default=24.0, ge=0, description="After a rotation, deliveries are signed with the previous secret too for "
        "this long."
    )
    webhook_retry_base_seconds: float = Field(default=30.0, description="First retry delay; doubles each attempt.")
    webhook_retry_max_seconds: float = Field(default=6 * 3600.0, description="Longest delay between two attempts.")
    webhook_retry_window_hours: float = Field(default=24.0, description="Retry for this long, then mark failed.")
    webhook_disable_after_hours: float = Field(default=72.0, description="Disable an endpoint failing this long.")
    dispatch_interval_seconds: float = Field(default=1.0, description="How often the dispatcher looks for work.")
    revalue_interval_seconds: float = Field(default=300.0, description="How often date-driven changes are applied.")
    inline_revaluation_max_buyers: int = Field(
        default=200, ge=0, description="A policy, FX or settings change affecting more buyers than this is revalued "
        "in the background (the request answers 202 with the revaluation's link); up to it, within the request.")
    revaluation_interval_seconds: float = Field(
        default=2.0, gt=0, description="How often each scheduler looks for queued background revaluations.")
    revaluation_lease_seconds: float = Field(
        default=300.0, gt=0, description="A running revaluation that has not reported for this long is taken over "
        "by another runner, from the last chunk it committed.")
    metrics_key: str | None = Field(default=None, description="When set, GET /metrics needs 'Bearer <key>'.")
    log_level: str = Field(default="INFO")

    @field_validator("webhook_allowed_networks", mode="before")
    @classmethod
    def _split_networks(cls, value: Any) -> Any:
        if isinstance(value, str):
            return tuple(ipaddress.ip_network(part.strip()) for part in value.split(",") if part.strip())
        return value

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _split_origins(cls, value: Any) -> Any:
        if isinstance(value, str):
            return tuple(part.strip().rstrip("/") for part in value.split(",") if part.strip())
        return value

    @model_validator(mode="after")
    def _deadline_below_lease(self) -> Self:
        if self.webhook_timeout_seconds >= self.webhook_lease_seconds:
            raise ValueError("webhook_timeout_seconds must be below webhook_lease_seconds (a send outlives its lease)")
        return self


@lru_cache
def get_settings() -> Settings:
    return Settings()
