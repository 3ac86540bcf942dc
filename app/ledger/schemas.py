"""API shapes of the ledger. Amounts travel as decimal strings."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, Field, ValidationInfo, field_validator
from pydantic_core import InitErrorDetails

from app.core.fields import Country, Currency, DecimalStr, IsoDate, MoneyModel, Ref, StrictModel

InvoiceKind = Literal["invoice", "credit_note"]
InvoiceStatus = Literal["open", "partially_paid", "paid", "credited"]
Outcome = Literal["created", "updated", "unchanged", "rejected"]


class BuyerIn(StrictModel):
    name: str = Field(min_length=1, max_length=300)
    country: Country
    registration_id: str | None = Field(default=None, max_length=100)
    insurer_buyer_id: str | None = Field(default=None, max_length=100)
    sector: str | None = Field(default=None, max_length=100)


class BuyerBalance(BaseModel):
    currency: str
    balance: Decimal = Field(description="invoices - credit notes - payments")
    open_invoices: Decimal = Field(description="sum of the open balances of its invoices")
    unapplied_credit: Decimal = Field(description="credit notes and payments not yet applied to an invoice")


class BuyerOut(BaseModel):
    buyer_ref: str
    name: str
    country: str
    registration_id: str | None
    insurer_buyer_id: str | None
    sector: str | None
    balances: list[BuyerBalance] | None = None


class InvoiceIn(MoneyModel):
    money_fields: ClassVar[dict[str, bool]] = {"amount": True}

    buyer_ref: Ref
    kind: InvoiceKind = "invoice"
    currency: Currency
    amount: DecimalStr
    issue_date: IsoDate = Field(description="The delivery date")
    due_date: IsoDate
    applies_to: Ref | None = Field(default=None, description="For a credit note: the invoice it credits")

    @field_validator("due_date")
    @classmethod
    def _due(cls, v: date, info: ValidationInfo) -> date:
        issue = info.data.get("issue_date")
        if issue is not None and v < issue:
            raise ValueError("must be on or after issue_date")
        return v

    @field_validator("applies_to")
    @classmethod
    def _applies_to(cls, v: str | None, info: ValidationInfo) -> str | None:
        if v is not None and info.data.get("kind") != "credit_note":
            raise ValueError("only a credit note applies to an invoice")
        return v


class InvoiceBatchItem(InvoiceIn):
    invoice_ref: Ref


class AppliedOut(BaseModel):
    source: Literal["payment", "credit_note"]
    ref: str
    amount: Decimal
    explicit: bool


class CorrectionOut(BaseModel):
    revision: int = Field(description="The revision this body was, before the correction")
    previous: dict[str, Any]
    recorded_at: datetime


class InvoiceOut(BaseModel):
    invoice_ref: str
    buyer_ref: str
    kind: InvoiceKind
    currency: str
    amount: Decimal
    issue_date: date
    due_date: date
    original_due_date: date
    applies_to: str | None
    open_balance: Decimal
    status: str
    revision: int
    applied: list[AppliedOut] | None = Field(
        default=None,
        description="Payments and credit notes applied to this invoice (or, for a credit note, where it went)",
    )
    corrections: list[CorrectionOut] | None = Field(default=None, description="Earlier bodies, oldest first")


class BatchIn(StrictModel):
    items: list[Any] = Field(description="Up to 5,000 items, each validated and written on its own")


class ItemResult(BaseModel):
    index: int
    ref: str | None
    outcome: Outcome
    problem: dict[str, Any] | None = None


class BatchOut(BaseModel):
    created: int
    updated: int
    unchanged: int
    rejected: int
    items: list[ItemResult]


class AllocationIn(MoneyModel):
    """Part of a payment the ERP applied to one invoice, in the payment's currency."""

    money_fields: ClassVar[dict[str, bool]] = {"amount": True}
    money_currency: ClassVar[str | None] = None  # the payment's: checked by PaymentIn

    invoice_ref: Ref
    amount: DecimalStr


class PaymentIn(MoneyModel):
    money_fields: ClassVar[dict[str, bool]] = {"amount": True}

    buyer_ref: Ref
    amount: DecimalStr
    currency: Currency
    received_on: IsoDate
    allocations: list[AllocationIn] = Field(default_factory=list)

    def nested_money_errors(self, currency: str | None) -> list[InitErrorDetails]:
        return [e for i, a in enumerate(self.allocations) for e in a.money_errors(currency, ("allocations", i))]


class PaymentBatchItem(PaymentIn):
    payment_ref: Ref


class PaymentApplied(BaseModel):
    invoice_ref: str
    amount: Decimal
    explicit: bool = Field(description="allocated by the ERP (true) or oldest due date first (false)")


class PaymentOut(BaseModel):
    payment_ref: str
    buyer_ref: str
    currency: str
    amount: Decimal
    received_on: date
    unapplied: Decimal
    reversed: bool
    applied: list[PaymentApplied]
