"""Reading an import CSV as it streams: delimiter `,` or `;` detected from the header, UTF-8 with or without a
BOM, amounts with a decimal point or a decimal comma (`1234.56`, `1234,56`, `1 234,56`, `1.234,56`, `1,234.56`).
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from typing import TextIO

from app.core.errors import Invalid

# The columns of each kind: the JSON fields of the matching API, one row per item.
COLUMNS: dict[str, tuple[str, ...]] = {
    "buyers": ("buyer_ref", "name", "country", "registration_id", "insurer_buyer_id", "sector"),
    "invoices": ("invoice_ref", "buyer_ref", "kind", "currency", "amount", "issue_date", "due_date", "applies_to"),
    "payments": ("payment_ref", "buyer_ref", "amount", "currency", "received_on", "allocated_invoice_ref",
                 "allocated_amount"),
    "limits": ("policy_ref", "buyer_ref", "status", "amount", "effective_from", "expires_on", "source",
               "max_credit_period_days", "decision_ref"),
}
REQUIRED: dict[str, tuple[str, ...]] = {
    "buyers": ("buyer_ref", "name", "country"),
    "invoices": ("invoice_ref", "buyer_ref", "currency", "amount", "issue_date", "due_date"),
    "payments": ("payment_ref", "buyer_ref", "amount", "currency", "received_on"),
    "limits": ("policy_ref", "buyer_ref", "status", "effective_from"),
}
AMOUNTS = frozenset({"amount", "allocated_amount"})
_SPACES = str.maketrans("", "", " \u00a0\u202f'")


def decimal_text(text: str) -> str:
    """An amount as the API reads it: the last of `.` and `,` is the decimal separator, the other groups
    thousands; a lone comma is a decimal comma."""
    text = text.translate(_SPACES)
    if "," in text and "." in text:
        if text.rfind(",") > text.rfind("."):
            return text.replace(".", "").replace(",", ".")
        return text.replace(",", "")
    return text.replace(",", ".")


def rows(kind: str, stream: TextIO) -> Iterator[tuple[int, dict[str, str]]]:
    """(line number, non-empty cells by column) for each data row. The header is checked first."""
    header_line = stream.readline().lstrip("\ufeff")
    if not header_line.strip():
        raise Invalid("The CSV is empty: the first line must name the columns.", field="/csv/header")
    delimiter = ";" if header_line.count(";") > header_line.count(",") else ","
    header = [h.strip() for h in next(csv.reader([header_line], delimiter=delimiter))]
    unknown = [h for h in header if h not in COLUMNS[kind]]
    if unknown:
        raise Invalid(f"Unknown column(s) {', '.join(unknown)}; the columns of {kind} are "
                      f"{','.join(COLUMNS[kind])}.", field="/csv/header")
    missing = [c for c in REQUIRED[kind] if c not in header]
    if missing:
        raise Invalid(f"Missing column(s) {', '.join(missing)}.", field="/csv/header")
    if len(set(header)) != len(header):
        raise Invalid("A column is named twice.", field="/csv/header")
    amounts = AMOUNTS & set(header)
    reader = csv.reader(stream, delimiter=delimiter)
    for cells in reader:
        line = reader.line_num + 1  # the header was line 1
        if not "".join(cells).strip():
            continue
        row = {}
        for name, value in zip(header, cells, strict=False):
            value = value.strip()
            if value:
                row[name] = decimal_text(value) if name in amounts else value
        if len(cells) > len(header):
            row["__error__"] = f"{len(cells)} cells, the header has {len(header)} columns"
        yield line, row
