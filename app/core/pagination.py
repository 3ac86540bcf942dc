"""Opaque keyset cursors and the page envelope."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Sequence
from datetime import date, datetime
from typing import Annotated, Any, Generic, TypeVar

from fastapi import Path, Query
from pydantic import BaseModel

from app.core.errors import Invalid

T = TypeVar("T")


class Page(BaseModel, Generic[T]):
    items: list[T]
    next_cursor: str | None = None


def encode_cursor(values: list[Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(values, default=str).encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None, arity: int) -> list[Any] | None:
    """The values of a keyset cursor: `arity` strings (what `encode_cursor` of row keys wrote); else a 422."""
    values = _decode(cursor, arity)
    # Row keys never hold control characters (references refuse them); PostgreSQL cannot even compare a NUL.
    if values is not None and not all(isinstance(v, str) and v.isprintable() for v in values):
        raise Invalid("cursor: not a cursor this endpoint returned", field="/cursor")
    return values


def _decode(cursor: str | None, arity: int) -> list[Any] | None:
    if not cursor:  # absent, or an empty `cursor=`: the first page
        return None
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        values = json.loads(base64.urlsafe_b64decode(padded.encode()))
    except (ValueError, UnicodeDecodeError):
        values = None
    if not isinstance(values, list) or len(values) != arity:
        raise Invalid("cursor: not a cursor this endpoint returned", field="/cursor")
    return values


def next_cursor(rows: Sequence[T], limit: int, key: Callable[[T], list[Any]]) -> str | None:
    """The cursor after `rows[:limit]`, the query having fetched `limit + 1` rows; None on the last page."""
    return encode_cursor(key(rows[limit - 1])) if len(rows) > limit else None


def cursor_date(value: str) -> date:
    """A date a cursor holds (an ISO string); a forged one is a 422 on `cursor`, never a 500."""
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise Invalid("cursor: not a cursor this endpoint returned", field="/cursor") from None


def cursor_datetime(value: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        parsed = None
    if parsed is None or parsed.tzinfo is None:
        raise Invalid("cursor: not a cursor this endpoint returned", field="/cursor")
    return parsed


MAX_ID = 2**63 - 1


def decode_id_cursor(cursor: str | None) -> int | None:
    """A cursor holding one row id (newest-first lists)."""
    values = _decode(cursor, 1)
    if values is None:
        return None
    value = values[0]
    if isinstance(value, bool) or not isinstance(value, int) or not (0 < value <= MAX_ID):
        raise Invalid("cursor: not a cursor this endpoint returned", field="/cursor")
    return value


Limit = Annotated[int, Query(ge=1, le=1000, description="Page size")]
IdPath = Annotated[int, Path(ge=1, le=MAX_ID, description="The row id")]
Cursor = Annotated[str | None, Query(description="next_cursor of the previous page (absent or empty: the first page)")]
