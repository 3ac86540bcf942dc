from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any, Literal

from pydantic import BaseModel, Field, field_validator

from app.alerts.rules import ALERT_TYPES
from app.core.fields import IsoDate, Ref, StrictModel

AlertState = Literal["open", "acknowledged", "resolved"]
AlertType = Literal[ALERT_TYPES]  # type: ignore[valid-type]


class AlertOut(BaseModel):
    id: int
    type: AlertType
    state: AlertState
    subject: str
    buyer_ref: str | None
    country: str | None
    invoice_ref: str | None
    details: dict[str, Any]
    opened_at: datetime
    opened_on: date
    acknowledged_at: datetime | None
    resolved_at: datetime | None
    resolution: Literal["cleared", "manual"] | None = Field(
        description="cleared (the condition went away) or manual")
    acknowledged_by: str | None = Field(default=None, description="The API key (its name) that acknowledged it")
    acknowledged_note: str | None = None
    resolved_by: str | None = Field(default=None, description="The API key (its name) that resolved it by hand")
    resolved_note: str | None = None
    note: str | None = Field(default=None, description="The latest note left on it (resolve's, else acknowledge's)")


class AlertActionIn(StrictModel):
    """Optional body of acknowledge and resolve: a note for the record."""

    note: str | None = Field(default=None, max_length=2000)

    @field_validator("note")
    @classmethod
    def _note(cls, v: str | None) -> str | None:
        if v is None:
            return None
        v = v.strip()
        return v or None


class ClaimIn(StrictModel):
    buyer_ref: Ref
    invoice_refs: list[Ref] = Field(min_length=1, max_length=1000)
    filed_on: IsoDate
    insurer_claim_ref: str | None = Field(default=None, max_length=100)

    @field_validator("invoice_refs")
    @classmethod
    def _unique(cls, v: list[str]) -> list[str]:
        if len(set(v)) != len(v):
            raise ValueError("lists an invoice twice")
        return v


class ClaimedInvoiceOut(BaseModel):
    invoice_ref: str
    open_balance: Decimal
    covered: Decimal
    expected_indemnity: Decimal
    claim_deadline: date | None
    in_time: bool


class ClaimOut(BaseModel):
    id: int
    buyer_ref: str
    filed_on: date
    insurer_claim_ref: str | None
    currency: str
    declared: Decimal = Field(description="Open balance of the claimed invoices")
    expected_indemnity: Decimal = Field(description="What the insurers should pay: covered x indemnity rate")
    invoices: list[ClaimedInvoiceOut]
    created_at: datetime


class SettingsIn(StrictModel):
    utilisation_threshold: Decimal = Field(default=Decimal("0.90"), gt=0, le=10)
    claim_lead_days: list[int] = Field(default_factory=lambda: [14, 7, 1], min_length=1, max_length=10)
    limit_expiry_notice_days: int = Field(default=30, ge=0, le=366)
    timezone: str = "Europe/Paris"
    daily_scan_hour: int = Field(default=6, ge=0, le=23)
    locale: str = Field(default="fr-FR", description="BCP 47 tag the console formats amounts and dates with")

    @field_validator("locale")
    @classmethod
    def _locale(cls, v: str) -> str:
        from babel import Locale, UnknownLocaleError

        try:
            Locale.parse(v, sep="-")
        except (UnknownLocaleError, ValueError) as exc:
            raise ValueError("must be a locale such as \"fr-FR\" or \"en-GB\"") from exc
        return v

    @field_validator("utilisation_threshold", mode="before")
    @classmethod
    def _threshold(cls, v: Any) -> Any:
        if isinstance(v, float):
            raise ValueError("must be a decimal string such as \"0.90\"")
        return v

    @field_validator("claim_lead_days")
    @classmethod
    def _leads(cls, v: list[int]) -> list[int]:
        if any(d < 0 or d > 365 for d in v):
            raise ValueError("each lead time is 0 to 365 days")
        return sorted(set(v), reverse=True)

    @field_validator("timezone")
    @classmethod
    def _tz(cls, v: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError("must be an IANA time zone such as \"Europe/Paris\"") from exc
        return v


class SettingsOut(BaseModel):
    utilisation_threshold: Decimal
    claim_lead_days: list[int]
    limit_expiry_notice_days: int
    timezone: str
    daily_scan_hour: int
    locale: str
