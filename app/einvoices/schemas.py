"""API shapes of e-invoice ingest."""

from __future__ import annotations

from decimal import Decimal
from typing import Any, Literal

from pydantic import BaseModel, Field

from app.ledger.schemas import InvoiceOut

IdentifierKind = Literal["party_identifier", "electronic_address", "legal_registration", "vat_number"]


class BuyerMatchOut(BaseModel):
    buyer_ref: str
    outcome: Literal["matched", "created"] = Field(
        description="matched: an existing buyer carries one of the document's buyer identifiers; created: none "
        "did, and a buyer was created from the document's buyer party"
    )
    matched_by: IdentifierKind | None = Field(
        default=None,
        description="Which identifier of the document matched: the buyer's party identifier (BT-46), electronic "
        "address (BT-49), legal registration (BT-47) or VAT number (BT-48), tried in that order",
    )
    identifier: str | None = Field(default=None, description="Its value in the document")
    matched_field: Literal["buyer_ref", "registration_id", "insurer_buyer_id"] | None = Field(
        default=None, description="The buyer's field it matched"
    )


class EInvoiceOut(BaseModel):
    syntax: Literal["ubl", "cii"]
    container: Literal["xml", "factur-x-pdf"]
    type_code: str = Field(description="The document type code (BT-3), e.g. 380 invoice, 381 credit note")
    outcome: Literal["created", "updated", "unchanged"] = Field(
        description="created: a new ledger document; updated: a correction of the one with this number; "
        "unchanged: the same document again"
    )
    buyer: BuyerMatchOut
    invoice: InvoiceOut = Field(description="The ledger document it became (an invoice or a credit note)")
    total_with_vat: Decimal | None = Field(default=None, description="BT-112, for reference")
    prepaid: Decimal | None = Field(default=None, description="BT-113, already paid: not receivable")
    warnings: list[str] = Field(default_factory=list)


class EInvoiceBatchItem(BaseModel):
    index: int
    name: str = Field(description="The file's name in the archive")
    outcome: Literal["created", "updated", "unchanged", "rejected"]
    result: EInvoiceOut | None = None
    problem: dict[str, Any] | None = Field(default=None, description="Why it was rejected (problem+json)")


class EInvoiceBatchOut(BaseModel):
    created: int
    updated: int
    unchanged: int
    rejected: int
    items: list[EInvoiceBatchItem]
