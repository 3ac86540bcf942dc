"""The latest FX rate per pair on or before a day, by index (DISTINCT ON on PostgreSQL, a skip scan on SQLite):
the same answers as reading the whole history, on both databases."""

from __future__ import annotations

import random
from datetime import date, timedelta
from decimal import Decimal

from sqlalchemy import text

from app.cover.repository import _SQLITE_LATEST_RATES, rates_on
from tests.helpers import ok

PAIRS = [("EUR", "USD"), ("EUR", "GBP"), ("EUR", "JPY"), ("USD", "CHF"), ("GBP", "EUR")]


def _history(seed: int) -> list[dict]:
    rng = random.Random(seed)
    rows = []
    for base, quote in PAIRS:
        day = date(2026, 1, 1) + timedelta(days=rng.randrange(0, 20))
        while day < date(2026, 4, 30):
            rows.append({"date": day.isoformat(), "base": base, "quote": quote,
                         "rate": f"{rng.uniform(0.5, 150):.6f}"})
            day += timedelta(days=rng.choice([1, 1, 1, 3, 7]))
    return rows


def _expected(rows: list[dict], day: date) -> dict[tuple[str, str], Decimal]:
    latest: dict[tuple[str, str], tuple[str, Decimal]] = {}
    for r in rows:
        key = (r["base"], r["quote"])
        if r["date"] <= day.isoformat() and (key not in latest or r["date"] > latest[key][0]):
            latest[key] = (r["date"], Decimal(r["rate"]))
    return {k: v for k, (_, v) in latest.items()}


def test_latest_rate_per_pair_matches_the_whole_history(make_tenant, database):
    mine, other = make_tenant(), make_tenant("Other SAS")
    rows = _history(1)
    ok(mine.client.put("/v1/fx-rates", json={"rates": rows}))
    # Another tenant's later, different rates never leak into this tenant's lookup.
    ok(other.client.put("/v1/fx-rates", json={"rates": [dict(r, rate="9.99") for r in _history(2)]}))
    with database.session(mine.id) as session:
        for day in [date(2025, 12, 31), date(2026, 1, 1), date(2026, 1, 10), date(2026, 2, 14), date(2026, 3, 20),
                    date(2026, 4, 29), date(2026, 12, 31)]:
            assert rates_on(session, day) == _expected(rows, day), day
    with database.session(other.id) as session:
        assert set(rates_on(session, date(2026, 12, 31)).values()) == {Decimal("9.99")}


def test_the_sqlite_lookup_probes_the_index(make_tenant, database):
    if database.dialect != "sqlite":
        return  # PostgreSQL: DISTINCT ON over the same index (its planner picks by table size)
    tenant = make_tenant()
    ok(tenant.client.put("/v1/fx-rates", json={"rates": _history(3)}))
    with database.session(tenant.id) as session:
        plan = session.execute(text("EXPLAIN QUERY PLAN " + _SQLITE_LATEST_RATES),
                               {"tenant": tenant.id, "day": "2026-03-20"}).all()
    details = [row[-1] for row in plan]
    # Only the one-row pair walk and its first step are scanned; fx_rates itself is only searched by index.
    scans = [d for d in details if d.startswith("SCAN") and not any(w in d for w in ("INDEX", "pair", "subquery"))]
    assert not scans, details
    assert any("ix_fx_rates_lookup" in d for d in details), details
