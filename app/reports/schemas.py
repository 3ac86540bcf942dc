"""API shapes of the reports. Amounts travel as decimal strings. Each row model's fields are the CSV and
Excel columns, in order."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from pydantic import BaseModel, Field


class AgingRow(BaseModel):
    buyer_ref: str
    buyer_name: str
    country: str
    currency: str
    invoices: int
    outstanding: Decimal
    not_due: Decimal
    overdue_1_30: Decimal
    overdue_31_60: Decimal
    overdue_61_90: Decimal
    overdue_over_90: Decimal


class AgingTotal(BaseModel):
    currency: str
    buyers: int
    invoices: int
    outstanding: Decimal
    not_due: Decimal
    overdue_1_30: Decimal
    overdue_31_60: Decimal
    overdue_61_90: Decimal
    overdue_over_90: Decimal


class AgingOut(BaseModel):
    as_of: date
    country: str | None
    rows: list[AgingRow]
    totals: list[AgingTotal] = Field(description="One per currency")


class TopUpNeedRow(BaseModel):
    buyer_ref: str
    buyer_name: str
    country: str
    currency: str
    days: int = Field(description="Days with a snapshot of this buyer in the window")
    peak_outstanding: Decimal
    primary_limit: Decimal = Field(description="The primary limit in force today")
    top_up_limit: Decimal = Field(description="The Top Up limit in force today")
    peak_above_primary: Decimal = Field(description="The most the primary left uncovered on one day")
    peak_uncovered: Decimal
    days_above_primary: int
    share_days_above_primary: Decimal
    suggested_top_up: Decimal = Field(description="peak_above_primary rounded up to a round figure")


class TopUpNeedTotal(BaseModel):
    currency: str
    buyers: int
    peak_outstanding: Decimal
    peak_above_primary: Decimal
    peak_uncovered: Decimal
    suggested_top_up: Decimal


class TopUpNeedsOut(BaseModel):
    from_day: date
    to_day: date
    snapshot_days: int
    rows: list[TopUpNeedRow] = Field(description="Buyers the primary left uncovered at some point, biggest first")
    totals: list[TopUpNeedTotal] = Field(description="One per currency")


class TurnoverRow(BaseModel):
    month: str = Field(description="YYYY-MM")
    country: str
    currency: str = Field(description="The policy currency")
    invoices: int
    invoiced: Decimal | None = Field(description="None when an FX rate is missing (see errors)")
    credit_notes: int
    credited: Decimal | None
    turnover: Decimal | None = Field(description="invoiced - credited")


class TurnoverTotals(BaseModel):
    invoices: int
    invoiced: Decimal | None
    credit_notes: int
    credited: Decimal | None
    turnover: Decimal | None
    premium_at_rate: Decimal | None = Field(description="turnover x premium_rate")
    estimated_premium: Decimal | None = Field(description="premium_at_rate, at least the minimum premium")


class TurnoverOut(BaseModel):
    policy_ref: str
    currency: str
    from_day: date
    to_day: date
    premium_rate: Decimal | None
    minimum_premium: Decimal | None
    rows: list[TurnoverRow]
    totals: TurnoverTotals
    errors: list[str] = Field(description="Missing FX rates: the figures they touch are unknown, never zero")


class OverdueDeclarationRow(BaseModel):
    buyer_ref: str
    buyer_name: str
    country: str
    invoice_ref: str
    currency: str
    open_balance: Decimal
    issue_date: date
    due_date: date
    original_due_date: date
    days_overdue: int
    policy_ref: str
    declare_by: date = Field(description="original due date + the policy's declaration threshold")
    claim_deadline: date
    days_to_claim_deadline: int = Field(description="Negative: the deadline has passed")


class CountTotal(BaseModel):
    currency: str
    invoices: int
    open_balance: Decimal


class OverdueDeclarationsOut(BaseModel):
    as_of: date
    rows: list[OverdueDeclarationRow]
    totals: list[CountTotal]


class InsuredReceivableRow(BaseModel):
    buyer_ref: str
    buyer_name: str
    country: str
    registration_id: str | None
    insurer_buyer_id: str | None
    invoice_ref: str
    issue_date: date
    due_date: date
    currency: str = Field(description="The cover currency (the primary policy's)")
    open_balance: Decimal
    primary_policy_ref: str | None
    covered_primary: Decimal
    primary_indemnity_rate: Decimal | None
    top_up_policy_ref: str | None
    covered_top_up: Decimal
    top_up_indemnity_rate: Decimal | None
    uncovered: Decimal
    uncovered_reason: str | None
    indemnifiable: Decimal
    claim_deadline: date | None


class InsuredTotal(BaseModel):
    currency: str
    invoices: int
    open_balance: Decimal
    covered_primary: Decimal
    covered_top_up: Decimal
    uncovered: Decimal
    indemnifiable: Decimal


class InsuredReceivablesOut(BaseModel):
    as_of: date
    rows: list[InsuredReceivableRow]
    totals: list[InsuredTotal]
    errors: list[str]


class PaymentBehaviourRow(BaseModel):
    buyer_ref: str
    buyer_name: str
    country: str
    currency: str
    invoices_paid: int
    amount_paid: Decimal
    average_days_beyond_terms: Decimal = Field(description="Days paid after the original due date (early: 0)")
    weighted_days_beyond_terms: Decimal = Field(description="The same, weighted by invoice amount")
    max_days_beyond_terms: int
    paid_late: int
    share_paid_late: Decimal = Field(description="Share of the invoices paid after their due date")


class PaymentBehaviourOut(BaseModel):
    from_day: date
    to_day: date
    rows: list[PaymentBehaviourRow]

