"""Exact decimal columns that behave the same on PostgreSQL and SQLite.

PostgreSQL stores NUMERIC natively. SQLite has no decimal type (NUMERIC affinity
turns values into binary floats), so there the value is stored as a scaled
64-bit integer: sums and comparisons stay exact in SQL on both databases.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import BigInteger, DateTime, Numeric
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator, TypeEngine


class Fixed(TypeDecorator[Decimal]):
    impl = Numeric
    cache_ok = True

    def __init__(self, scale: int = 4, precision: int = 24) -> None:
        super().__init__()
        self.scale = scale
        self.precision = precision

    def __repr__(self) -> str:  # what Alembic writes into migrations
        return f"Fixed(scale={self.scale}, precision={self.precision})"

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(BigInteger())
        return dialect.type_descriptor(Numeric(self.precision, self.scale, asdecimal=True))

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        if value is None:
            return None
        value = Decimal(value)
        if dialect.name == "sqlite":
            scaled = value.scaleb(self.scale)
            if scaled != scaled.to_integral_value():
                raise ValueError(f"{value} has more than {self.scale} decimal places")
            return int(scaled)
        return value

    def process_result_value(self, value: Any, dialect: Dialect) -> Decimal | None:
        if value is None:
            return None
        if dialect.name == "sqlite":
            return Decimal(int(value)).scaleb(-self.scale)
        return Decimal(value)

    def result_processor(self, dialect: Dialect, coltype: Any) -> Any:
        if dialect.name == "postgresql":  # psycopg hands NUMERIC back as a Decimal: nothing to do per value
            return None
        return super().result_processor(dialect, coltype)

    def coerce_compared_value(self, op: Any, value: Any) -> TypeEngine[Any]:
        return self


def storage_max(column: Fixed) -> Decimal:
    """The largest value a Fixed column holds on every database (SQLite's scaled int64 is the tighter bound)."""
    numeric_max = Decimal(10) ** (column.precision - column.scale) - Decimal(1).scaleb(-column.scale)
    return min(numeric_max, Decimal(2**63 - 1).scaleb(-column.scale))


Money = Fixed(4, 24)
Rate = Fixed(10, 28)
Ratio = Fixed(6, 12)


class UtcDateTime(TypeDecorator[datetime]):
    """Timestamps in UTC, aware on the way out on every database (SQLite hands back naive ones)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def __repr__(self) -> str:
        return "UtcDateTime()"

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime: pass an aware (UTC) datetime")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
