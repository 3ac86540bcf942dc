"""Portfolio and country totals kept by delta: what each refresh changes, added to a handful of rows.

Every refresh knows each buyer's stored row before and after: it adds the difference to the totals of the
(country, currency, status) the buyer leaves and joins, in the same transaction, after taking the lock of each
country concerned (PostgreSQL advisory locks, sorted, after the buyers' row locks and before the tenant row:
one lock order everywhere). The country alert is then decided on totals that include every committed change:
two concurrent ingests in one country take turns instead of both missing the limit.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import Any

from sqlalchemy import delete, func, select, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from app.exposure.models import BuyerExposure, ExposureTotal
from app.exposure.repository import SUMMED
from app.scheduling.locks import lock_key

ZERO = Decimal(0)
Key = tuple[str, str, str]  # country, currency, status


class Deltas:
    """What a refresh adds to the totals, per (country, currency, status)."""

    def __init__(self) -> None:
        self.by_key: dict[Key, tuple[int, dict[str, Decimal]]] = {}

    def add(self, key: Key, sign: int, amounts: Mapping[str, Any]) -> None:
        count, sums = self.by_key.get(key, (0, dict.fromkeys(SUMMED, ZERO)))
        self.by_key[key] = (count + sign, {f: sums[f] + sign * Decimal(amounts[f]) for f in SUMMED})

    def countries(self) -> set[str]:
        return {country for country, _, _ in self.by_key}


def lock_countries(session: Session, tenant_id: str, countries: Iterable[str]) -> None:
    """Hold each country's lock until the transaction ends (PostgreSQL; SQLite has one writer at a time)."""
    if session.get_bind().dialect.name != "postgresql":
        return
    for country in sorted(set(countries)):
        session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": lock_key(f"country:{tenant_id}:{country}")})


def apply(session: Session, tenant_id: str, deltas: Deltas) -> None:
    """Add the deltas to the stored totals (one upsert, executemany), under the countries' locks."""
    rows = [{"tenant_id": tenant_id, "country": country, "currency": currency, "status": status, "buyers": count,
             **sums}
            for (country, currency, status), (count, sums) in sorted(deltas.by_key.items())
            if count or any(sums.values())]
    if not rows:
        return
    lock_countries(session, tenant_id, deltas.countries())
    dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    stmt = dialect.insert(ExposureTotal)
    stmt = stmt.on_conflict_do_update(
        index_elements=["tenant_id", "country", "currency", "status"],
        set_={f: getattr(ExposureTotal, f) + getattr(stmt.excluded, f) for f in ("buyers", *SUMMED)},
    )
    session.execute(stmt, rows)


def _sums_of_rows(session: Session) -> dict[Key, tuple[int, dict[str, Decimal]]]:
    stmt = select(BuyerExposure.country, BuyerExposure.currency, BuyerExposure.status, func.count(),
                  *[func.coalesce(func.sum(getattr(BuyerExposure, f)), 0) for f in SUMMED]).group_by(
        BuyerExposure.country, BuyerExposure.currency, BuyerExposure.status)
    return {(r[0], r[1], r[2]): (r[3], {f: Decimal(v) for f, v in zip(SUMMED, r[4:], strict=True)})
            for r in session.execute(stmt)}


def _stored(session: Session) -> dict[Key, tuple[int, dict[str, Decimal]]]:
    return {(t.country, t.currency, t.status): (t.buyers, {f: getattr(t, f) for f in SUMMED})
            for t in session.scalars(select(ExposureTotal).execution_options(populate_existing=True))
            if t.buyers or any(getattr(t, f) for f in SUMMED)}


def rebuild(session: Session, tenant_id: str) -> None:
    """Totals summed afresh from the buyer rows (after a whole-tenant recompute)."""
    countries = set(session.scalars(select(BuyerExposure.country).distinct())) | {k[0] for k in _stored(session)}
    lock_countries(session, tenant_id, countries)  # before summing: the sums include every committed change
    sums = _sums_of_rows(session)
    session.execute(delete(ExposureTotal))
    deltas = Deltas()
    deltas.by_key.update(sums)
    apply(session, tenant_id, deltas)


def differences(session: Session) -> list[str]:
    """Where the stored totals differ from the sums of the buyer rows (nothing, if all is well)."""
    want, have = _sums_of_rows(session), _stored(session)
    return [f"totals {'/'.join(key)}: stored {have.get(key)!r}, summed {want.get(key)!r}"
            for key in sorted(set(want) | set(have)) if want.get(key) != have.get(key)]
