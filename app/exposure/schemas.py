"""API shapes of exposure: portfolio, buyers, countries, credit checks."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import ClassVar, Literal

from pydantic import BaseModel, Field

from app.core.fields import Currency, DecimalStr, IsoDate, MoneyModel, Ref

BuyerStatus = Literal["ok", "above_primary", "above_cover", "no_cover", "incomplete"]
Reason = Literal[
    "outside_territory", "outside_policy_period", "terms_exceed_max_credit_period",
    "delivered_during_stop_of_cover", "claim_deadline_passed", "no_limit", "above_limit", "missing_fx_rate",
]


class Amounts(BaseModel):
    outstanding: Decimal
    not_due: Decimal
    overdue_1_30: Decimal
    overdue_31_60: Decimal
    overdue_61_90: Decimal
    overdue_over_90: Decimal
    covered_primary: Decimal
    covered_top_up: Decimal
    uncovered: Decimal
    indemnifiable: Decimal


class BuyerExposureOut(Amounts):
    buyer_ref: str
    name: str
    country: str
    currency: str
    valued_on: date
    primary_limit: Decimal
    top_up_limit: Decimal
    utilisation: Decimal | None = Field(description="outstanding / (primary + Top Up limit in force); null: no limit")
    status: BuyerStatus = Field(description=(
        "ok; above_primary: covered only thanks to the Top Up; above_cover: something is uncovered; no_cover: "
        "exposure and no limit at all; incomplete: a figure needs a missing FX rate (see errors)"))
    errors: list[str] = Field(default_factory=list, description="Why some figures are unknown (a missing FX rate)")
    stale: bool = Field(default=False, description=(
        "A policy, FX or settings change awaits this buyer's background revaluation (see /v1/revaluations): the "
        "figures are those valued on `valued_on` with the previous terms until it comes"))


class InvoiceCoverOut(BaseModel):
    invoice_ref: str
    issue_date: date
    due_date: date
    claim_deadline: date | None
    claim_filed_on: date | None = None
    open_balance: Decimal
    covered_primary: Decimal
    covered_top_up: Decimal
    uncovered: Decimal
    indemnifiable: Decimal = Decimal(0)
    reason: Reason | None = None
    original_currency: str | None = None
    original_open_balance: Decimal | None = None
    primary_policy_ref: str | None = None


class LimitInForceOut(BaseModel):
    policy_ref: str
    layer: Literal["primary", "top_up"]
    amount: Decimal
    source: str
    expires_on: date | None = None


class StopPeriodOut(BaseModel):
    policy_ref: str
    starts_on: date = Field(description="Deliveries after this day are uncovered")
    ends_on: date | None = Field(description="The day the invoices that caused it were paid; null: still running")
    invoice_refs: list[str]


class BuyerExposureDetail(BuyerExposureOut):
    stop_of_cover_from: date | None = Field(description="Start of the stop of cover running now, if any")
    stop_periods: list[StopPeriodOut] = Field(description="Every stop of cover, past and running (rule 7)")
    missing_rates: list[str] = Field(default_factory=list, description="FX pairs the figures need and lack")
    limits: list[LimitInForceOut]
    invoice_count: int = Field(description="The buyer's open invoices in all")
    invoices: list[InvoiceCoverOut] = Field(description=(
        "The first page of its open invoices in walk order (delivery date, then reference); the rest from "
        "`GET /v1/exposure/buyers/{buyer_ref}/invoices?cursor=invoices_next_cursor`"))
    invoices_next_cursor: str | None = Field(default=None, description="Cursor of the next page of invoices")


class PortfolioOut(Amounts):
    currency: str
    valued_on: date | None
    buyers: int
    buyers_by_status: dict[str, int]
    errors: list[str]
    stale_buyers: int = Field(default=0, description=(
        "Buyers whose figures await a background revaluation after a policy, FX or settings change (0: all "
        "current)"))


class RevaluationOut(BaseModel):
    """A background revaluation: the buyers a policy, FX or settings change moved, re-evaluated in chunks."""

    id: str
    href: str = Field(description="This revaluation's own URL, to poll")
    state: Literal["queued", "running", "done", "failed"]
    reason: str = Field(description="The change(s) it applies")
    total: int = Field(description="Buyers to re-evaluate (counted again as it goes: later changes may add some)")
    done: int = Field(description="Buyers re-evaluated so far")
    progress: float = Field(ge=0, le=1, description="done / total, 1 once done")
    error: str | None = Field(default=None, description="Why it failed")
    created_at: datetime
    started_at: datetime | None
    heartbeat_at: datetime | None = Field(description="Last chunk committed")
    finished_at: datetime | None


class CountryExposureOut(BaseModel):
    country: str
    currency: str
    buyers: int
    outstanding: Decimal
    covered_primary: Decimal
    covered_top_up: Decimal
    uncovered: Decimal
    indemnifiable: Decimal
    country_limit: Decimal | None
    headroom: Decimal | None
    above_limit: bool
    errors: list[str] = Field(default_factory=list, description="Why some figures are unknown (a missing FX rate)")


class CreditCheckIn(MoneyModel):
    money_fields: ClassVar[dict[str, bool]] = {"amount": True}

    buyer_ref: Ref
    currency: Currency
    amount: DecimalStr
    delivery_date: IsoDate | None = Field(default=None, description="Default: today")
    payment_terms_days: int | None = Field(default=None, ge=0, le=3650, description="Default: 0 (due on delivery)")


class CreditCheckOut(BaseModel):
    buyer_ref: str
    decision: Literal["covered", "partially_covered", "not_covered"]
    currency: str = Field(description="The buyer's cover currency (its primary policy's)")
    amount: Decimal = Field(description="The new invoice, in that currency")
    covered_primary: Decimal
    covered_top_up: Decimal
    uncovered: Decimal
    headroom_primary: Decimal = Field(description="Primary limit left after this invoice")
    headroom_top_up: Decimal = Field(description="Top Up limit left after this invoice")
    reasons: list[Reason]
    exposure_after: Decimal
