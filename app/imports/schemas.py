"""API shapes of the CSV import."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

ImportKind = Literal["buyers", "invoices", "payments", "limits"]


class RejectedRow(BaseModel):
    line: int = Field(description="Line number in the file (the header is line 1)")
    ref: str | None
    reason: str


class ImportOut(BaseModel):
    kind: ImportKind
    rows: int = Field(description="Data rows read")
    items: int = Field(description="Items written: one per row, one per payment for payments")
    created: int
    updated: int
    unchanged: int
    rejected: int
    rejected_rows: list[RejectedRow]
