"""Money, currencies and countries: exact decimals, ISO codes, per-currency quantisation."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal
from functools import lru_cache

import pycountry
from babel.numbers import get_currency_precision, list_currencies


@lru_cache(maxsize=1)
def _currencies() -> frozenset[str]:
    # Babel's list holds active and historic ISO 4217 codes; keep the ones pycountry
    # (the ISO 4217 list in force) also knows.
    return frozenset(c for c in list_currencies() if pycountry.currencies.get(alpha_3=c) is not None)


def is_currency(code: str) -> bool:
    """An ISO 4217 code in use today (what invoices, payments and policies may carry)."""
    return code in _currencies()


def currencies_in_use() -> list[str]:
    """The ISO 4217 codes `is_currency` accepts, sorted (the API's currency enum)."""
    return sorted(_currencies())


def is_known_currency(code: str) -> bool:
    """Any ISO 4217 code, historic ones included (the ECB history file still has BGN, CYP, DEM...)."""
    return code in list_currencies()


@lru_cache(maxsize=512)
def minor_units(currency: str) -> int:
    return get_currency_precision(currency)


@lru_cache(maxsize=512)
def _quantum(currency: str) -> Decimal:
    return Decimal(1).scaleb(-minor_units(currency))


def quantize(amount: Decimal, currency: str) -> Decimal:
    """Round to the currency's minor units (half up), e.g. 2 places for EUR, 0 for JPY."""
    return amount.quantize(_quantum(currency), rounding=ROUND_HALF_UP)


def fits_currency(amount: Decimal, currency: str) -> bool:
    """True when the amount has no more decimals than the currency has."""
    exponent = amount.as_tuple().exponent
    return isinstance(exponent, int) and (exponent >= -minor_units(currency) or amount == amount.quantize(
        _quantum(currency)
    ))


@lru_cache(maxsize=1)
def _countries() -> frozenset[str]:
    return frozenset(c.alpha_2 for c in pycountry.countries)


def countries() -> list[str]:
    """The codes `is_country` accepts, sorted (the API's country enum)."""
    return sorted(_countries())


def is_country(code: str) -> bool:
    return code in _countries()
