"""JSON, CSV or Excel: content negotiation and the streaming writers.

CSV goes through the stdlib `csv` module, a few hundred rows per chunk. Excel goes through openpyxl's
write-only workbook, which writes each row to a temporary file as it comes: memory stays flat whatever
the number of rows, and the finished file is streamed back in 64 KiB chunks.
"""

from __future__ import annotations

import csv
import io
import tempfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any, Literal

from fastapi import Request
from fastapi.responses import StreamingResponse

CSV = "text/csv"
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
Format = Literal["json", "csv", "xlsx"]
CSV_ROWS_PER_CHUNK = 500
FILE_CHUNK = 64 * 1024

# What the OpenAPI document says a report or export can answer, besides JSON.
FILE_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "content": {
            CSV: {"schema": {"type": "string"}},
            XLSX: {"schema": {"type": "string", "format": "binary"}},
        },
        "description": "JSON by default; `Accept: text/csv` streams CSV; `Accept: " + XLSX + "` gives an Excel file "
        "(or `?format=csv|xlsx|json`).",
    }
}


def negotiate(request: Request, requested: str | None, default: Format = "json") -> Format:
    """`?format=` wins; else the Accept header; else the default."""
    if requested in ("json", "csv", "xlsx"):
        return requested  # type: ignore[return-value]
    accept = request.headers.get("accept", "").lower()
    if "spreadsheetml" in accept:
        return "xlsx"
    if CSV in accept:
        return "csv"
    if "application/json" in accept:
        return "json"
    return default


def cell(value: Any) -> Any:
    """A value as CSV text."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, date | datetime):
        return value.isoformat()
    if isinstance(value, list | tuple):
        return "; ".join(str(v) for v in value)
    return str(value)


def csv_chunks(columns: Sequence[str], rows: Iterable[dict[str, Any]]) -> Iterator[bytes]:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(columns)
    for count, row in enumerate(rows, start=1):
        writer.writerow([cell(row.get(c)) for c in columns])
        if count % CSV_ROWS_PER_CHUNK == 0:
            yield buffer.getvalue().encode()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue().encode()


def _xlsx_value(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.astimezone(UTC).replace(tzinfo=None) if value.tzinfo else value  # Excel has no time zones: UTC
    if value is None or isinstance(value, bool | int | Decimal | date):
        return value
    if isinstance(value, list | tuple):
        return "; ".join(str(v) for v in value)
    return str(value)


def xlsx_chunks(sheet: str, columns: Sequence[str], rows: Iterable[dict[str, Any]]) -> Iterator[bytes]:
    from openpyxl import Workbook

    workbook = Workbook(write_only=True)
    worksheet = workbook.create_sheet(title=sheet[:31])
    worksheet.append(list(columns))
    for row in rows:
        worksheet.append([_xlsx_value(row.get(c)) for c in columns])
    with tempfile.TemporaryFile(suffix=".xlsx") as tmp:
        workbook.save(tmp)
        tmp.seek(0)
        while chunk := tmp.read(FILE_CHUNK):
            yield chunk


def file_response(
    fmt: Format, name: str, columns: Sequence[str], rows: Callable[[], Iterable[dict[str, Any]]]
) -> StreamingResponse:
    """Stream `rows()` (called when the response body is sent) as a CSV or Excel attachment."""
    if fmt == "xlsx":
        body = xlsx_chunks(name, columns, rows())
        media, ext = XLSX, "xlsx"
    else:
        body = csv_chunks(columns, rows())
        media, ext = f"{CSV}; charset=utf-8", "csv"
    return StreamingResponse(
        body, media_type=media, headers={"Content-Disposition": f'attachment; filename="{name}.{ext}"'}
    )
