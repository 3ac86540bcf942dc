"""API shapes of exposure: portfolio, buyers, countries, credit checks."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Literal

from pydantic import BaseModel, Field, ValidationInfo, field_validator

from app.core.fields import Currency, DecimalStr, IsoDate, Ref, StrictModel, check_amount

BuyerStatus = Literal["ok", "above_primary", "above_cover", "no_cover"]
Reason = Literal[
    "outside_territory", "outside_policy_period", "terms_exceed_max_credit_period",
    "delivered_after_stop_of_cover", "claim_deadline_passed", "no_limit", "above_limit", "missing_fx_rate",
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
    status: BuyerStatus


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


class BuyerExposureDetail(BuyerExposureOut):
    stop_of_cover_from: date | None
    limits: list[LimitInForceOut]
    errors: list[str]
    invoices: list[InvoiceCoverOut]


class PortfolioOut(Amounts):
    currency: str
    valued_on: date | None
    buyers: int
    buyers_by_status: dict[str, int]
    errors: list[str]


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


class CreditCheckIn(StrictModel):
    buyer_ref: Ref
    currency: Currency
    amount: DecimalStr
    delivery_date: IsoDate | None = Field(default=None, description="Default: today")
    payment_terms_days: int | None = Field(default=None, ge=0, le=3650, description="Default: 0 (due on delivery)")

    @field_validator("amount")
    @classmethod
    def _amount(cls, v: Decimal, info: ValidationInfo) -> Decimal:
        return check_amount(v, info.data.get("currency"))


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
    reasons: list[str]
    exposure_after: Decimal
