"""Pydantic field types shared by request bodies: refs, ISO codes, dates, decimal strings."""

from __future__ import annotations

import re
import sys
import unicodedata
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any, ClassVar, Self, get_args

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    StringConstraints,
    ValidationError,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

from app.core.money import countries, currencies_in_use, fits_currency, is_country, is_currency
from app.core.types import Money, Rate, storage_max

# Policy references stay plain codes (they appear inside paths such as /v1/policies/{ref}/limits).
REF_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:\-]{0,99}$"
# Ledger references (invoices, credit notes, payments, buyers) are stored as the ERP writes them:
# any printable Unicode, spaces and "/" included ("FA 2026/001", "018304 / 28865"), up to 200 characters.
REF_MAX_LENGTH = 200


def _refused_ranges() -> str:
    """Code points a reference may not hold, as regex ranges: the Unicode categories of control (Cc), format (Cf),
    surrogate (Cs) and separator (Zs, Zl, Zp) characters, the space excepted. Derived from the same Unicode
    database as `ref_problem`, so the published pattern and the validator agree exactly."""
    ranges: list[tuple[int, int]] = []
    for code in range(sys.maxunicode + 1):
        if code != 0x20 and unicodedata.category(chr(code)) in _REFUSED_CATEGORIES:
            if ranges and ranges[-1][1] == code - 1:
                ranges[-1] = (ranges[-1][0], code)
            else:
                ranges.append((code, code))

    # Literal characters (none of them is special inside a regex class): portable to every regex dialect.
    return "".join(chr(a) if a == b else f"{chr(a)}-{chr(b)}" for a, b in ranges if not 0xD800 <= a <= 0xDFFF)


_REFUSED_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Zs", "Zl", "Zp"})
_NOT_PRINTABLE = _refused_ranges()
# Not a space (U+0020) at either end; in between, anything but the refused categories.
LEDGER_REF_PATTERN = rf"^[^\s{_NOT_PRINTABLE}]([^{_NOT_PRINTABLE}]*[^\s{_NOT_PRINTABLE}])?$"
_LEDGER_REF = re.compile(LEDGER_REF_PATTERN)
_DECIMAL = re.compile(r"^-?\d{1,18}(\.\d{1,10})?$")
# Dates the computations can carry: years 1900 to 2999 (a due date plus credit periods, claim deadlines and
# extensions stays a date; Python's ends in 9999). The schema's pattern says the same.
_DATE = re.compile(r"^(19\d\d|2\d\d\d)-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])$")
# Bounds derived from the storage types. Money is a scaled 64-bit integer on SQLite (at most 922,337,203,685,477):
# one amount stays below about a thousandth of that (1e12, one trillion), so that a buyer's total of hundreds of the
# largest invoices still fits.
MONEY_STORAGE_MAX = storage_max(Money)
MAX_AMOUNT = Decimal(10) ** (len(str(int(MONEY_STORAGE_MAX))) - 3)
MAX_RATE = storage_max(Rate)  # 922,337,203.6854775807 (SQLite's int64 at 10 decimals)
RATE_DECIMALS = Rate.scale


class StrictModel(BaseModel):
    """Request bodies: unknown fields are rejected, and no text may hold a NUL character
    (PostgreSQL cannot store one; a request must fail the same way on every database)."""

    model_config = ConfigDict(extra="forbid")

    @field_validator("*", mode="before")
    @classmethod
    def _no_bool_for_int(cls, value: Any, info: ValidationInfo) -> Any:
        # Pydantic's lax mode reads true/false as 1/0 for an integer field; JSON has integers for that.
        if info.field_name is None or not _holds_bool(value):
            return value
        annotation = cls.model_fields[info.field_name].annotation
        if _mentions_int(annotation):
            raise ValueError("must be an integer, not a boolean")
        return value

    @field_validator("*", mode="after")
    @classmethod
    def _no_nul(cls, value: Any) -> Any:
        if _has_nul(value):
            raise ValueError("must not contain a NUL (\\u0000) character")
        return value


def _holds_bool(value: Any) -> bool:
    return isinstance(value, bool) or (isinstance(value, list) and any(isinstance(v, bool) for v in value))


def _mentions_int(annotation: Any) -> bool:
    """`int`, `int | None`, `list[int]`..."""
    return annotation is int or any(_mentions_int(arg) for arg in get_args(annotation))


def _has_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, list | tuple):
        return any(_has_nul(v) for v in value)
    if isinstance(value, dict):
        return any(_has_nul(k) or _has_nul(v) for k, v in value.items())
    return False


def _decimal(value: Any) -> Decimal:
    if isinstance(value, Decimal):
        return value
    if isinstance(value, bool) or not isinstance(value, str):
        raise ValueError("must be a decimal string such as \"1250.00\" (JSON numbers lose precision)")
    if not _DECIMAL.match(value.strip()):
        raise ValueError("must be a decimal string such as \"1250.00\"")
    try:
        return Decimal(value.strip())
    except InvalidOperation as exc:  # pragma: no cover - the pattern already excludes these
        raise ValueError("must be a decimal string") from exc


def _iso_date(value: Any) -> date:
    if isinstance(value, date):
        return value
    if not isinstance(value, str) or not _DATE.match(value):
        raise ValueError("must be a date as YYYY-MM-DD, from 1900 to 2999")
    try:
        return date.fromisoformat(value)
    except ValueError as exc:
        raise ValueError(f"{value} is not a calendar date") from exc


def _country(value: Any) -> str:
    if not isinstance(value, str) or not is_country(value):
        raise ValueError("must be an ISO 3166-1 alpha-2 country code such as \"FR\"")
    return value


def _currency(value: Any) -> str:
    if not isinstance(value, str) or not is_currency(value):
        raise ValueError("must be an ISO 4217 currency code such as \"EUR\"")
    return value


DecimalStr = Annotated[
    Decimal,
    BeforeValidator(_decimal),
    # No minus: no amount, rate or bound of the API may be negative (the validators refuse one).
    WithJsonSchema({"type": "string", "pattern": r"^\d{1,18}(\.\d{1,10})?$", "examples": ["1250.00"]}),
]
IsoDate = Annotated[
    date, BeforeValidator(_iso_date),
    WithJsonSchema({"type": "string", "format": "date", "pattern": _DATE.pattern, "examples": ["2026-11-20"]})
]
Country = Annotated[
    str, BeforeValidator(_country),
    WithJsonSchema({"type": "string", "enum": countries(), "examples": ["FR"],
                    "description": "ISO 3166-1 alpha-2 country code"}),
]
Currency = Annotated[
    str, BeforeValidator(_currency),
    WithJsonSchema({"type": "string", "enum": currencies_in_use(), "examples": ["EUR"],
                    "description": "ISO 4217 currency code in use"}),
]
PolicyRef = Annotated[str, StringConstraints(pattern=REF_PATTERN)]


def ref_problem(value: str) -> str | None:
    """Why `value` cannot be a ledger reference, or None when it can."""
    if len(value) <= REF_MAX_LENGTH and _LEDGER_REF.fullmatch(value):  # the usual case, in one regex match
        return None
    if not value:
        return "must not be empty"
    if len(value) > REF_MAX_LENGTH:
        return f"must be at most {REF_MAX_LENGTH} characters (it has {len(value)})"
    if value != value.strip():
        return "must not start or end with whitespace"
    for position, char in enumerate(value):
        if char != " " and unicodedata.category(char) in _REFUSED_CATEGORIES:
            return (
                f"must hold printable characters only: character {position + 1} is U+{ord(char):04X} "
                "(a control, format or separator character)"
            )
    return None


def _ref(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError("must be a string")
    problem = ref_problem(value)
    if problem is not None:
        raise ValueError(problem)
    return value


_REF_SCHEMA = {
    "type": "string",
    "minLength": 1,
    "maxLength": REF_MAX_LENGTH,
    "pattern": LEDGER_REF_PATTERN,
    "description": "Printable Unicode as the ERP writes it, spaces and '/' included; no leading or trailing space, "
    "no control character.",
    "examples": ["FA 2026/001"],
}
Ref = Annotated[str, AfterValidator(_ref), WithJsonSchema(_REF_SCHEMA)]


def amount_problem(amount: Decimal, currency: str | None, *, positive: bool = True) -> str | None:
    """What is wrong with an amount, or None: > 0 (or >= 0), below MAX_AMOUNT, no more decimals than its currency."""
    if not amount.is_finite():
        return "must be a finite decimal"
    if positive and amount <= 0:
        return "must be greater than 0"
    if not positive and amount < 0:
        return "must not be negative"
    if amount >= MAX_AMOUNT:
        return f"must be below {MAX_AMOUNT:,.0f}"
    if currency is not None and not fits_currency(amount, currency):
        return f"has more decimals than {currency} allows"
    return None


def check_amount(amount: Decimal, currency: str | None, *, positive: bool = True) -> Decimal:
    """Field validator body (see `amount_problem`)."""
    problem = amount_problem(amount, currency, positive=positive)
    if problem is not None:
        raise ValueError(problem)
    return amount


def rate_problem(rate: Decimal) -> str | None:
    """An FX rate: > 0, at most RATE_DECIMALS decimals, within what the storage holds."""
    if not rate.is_finite():
        return "must be a finite decimal"
    if rate <= 0:
        return "must be greater than 0"
    if rate.as_tuple().exponent < -RATE_DECIMALS:  # type: ignore[operator]
        return f"must have at most {RATE_DECIMALS} decimals"
    if rate > MAX_RATE:
        return f"must be at most {MAX_RATE}"
    return None


class MoneyModel(StrictModel):
    """A request body carrying amounts in a currency it names.

    One validator, run once every field is parsed (the currency included, wherever it stands in the body), checks
    every amount: sign, bound, and no more decimals than the currency has. `money_fields` maps each amount field to
    whether it must be above zero; `money_currency` names the currency field (None: checked by the service, which
    knows the currency, e.g. a policy's).
    """

    money_fields: ClassVar[dict[str, bool]] = {}
    money_currency: ClassVar[str | None] = "currency"

    def money_errors(self, currency: str | None, prefix: tuple[str | int, ...] = ()) -> list[InitErrorDetails]:
        errors: list[InitErrorDetails] = []
        for name, positive in self.money_fields.items():
            value = getattr(self, name)
            if value is None:
                continue
            problem = amount_problem(value, currency, positive=positive)
            if problem is not None:
                errors.append(InitErrorDetails(type=PydanticCustomError("value_error", problem),
                                               loc=(*prefix, name), input=str(value)))
        return errors

    def nested_money_errors(self, currency: str | None) -> list[InitErrorDetails]:
        """Amounts of nested items in the same currency (a payment's allocations): override where needed."""
        return []

    @model_validator(mode="after")
    def _check_money(self) -> Self:
        currency = getattr(self, self.money_currency) if self.money_currency else None
        errors = self.money_errors(currency) + self.nested_money_errors(currency)
        if errors:
            raise ValidationError.from_exception_data(type(self).__name__, errors)
        return self
