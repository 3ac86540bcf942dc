"""Benchmarks of the ingest path and the dashboard poll, on SQLite and PostgreSQL.

    make bench            (or: uv run python -m bench.run [--runs 5])

Each figure is the median of several runs, with its ratio to a reference measured
in the same run (an authenticated GET of one buyer), so that machines compare.
PostgreSQL: COVERWATCH_TEST_POSTGRES_URL or postgresql+psycopg://postgres@127.0.0.1:5432/test, schema cw_bench.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from app.core.config import Settings
from app.core.db import Database
from app.main import create_app
from app.migrate import upgrade
from app.tenants.service import create_tenant

BATCH = 5000


def _median(fn: Callable[[], object], runs: int) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _postgres_url() -> str:
    base = make_url(os.environ.get("COVERWATCH_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"))
    engine = create_engine(base, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text("DROP SCHEMA IF EXISTS cw_bench CASCADE"))
        conn.execute(text("CREATE SCHEMA cw_bench"))
    engine.dispose()
    return base.update_query_dict({"options": "-csearch_path=cw_bench"}).render_as_string(hide_password=False)


def bench(url: str, runs: int) -> dict[str, float]:
    upgrade(url)
    db = Database(url)
    app = create_app(Settings(database_url=url, today="2026-03-20", scheduler_enabled=False), db)
    with db.session() as session, session.begin():
        _, key = create_tenant(session, "bench", "EUR")
    api = TestClient(app, headers={"Authorization": f"Bearer {key}"})
    api.put("/v1/policies/P", json={"insurer": "A", "kind": "whole_turnover", "currency": "EUR",
                                    "starts_on": "2026-01-01", "ends_on": "2026-12-31", "indemnity_rate": "0.9",
                                    "max_credit_period_days": 120, "claim_deadline_days": 60})
    for b in range(50):
        api.put(f"/v1/buyers/B{b}", json={"name": f"B{b}", "country": "FR"})
        api.post("/v1/policies/P/limits", json={"buyer_ref": f"B{b}", "amount": "500000.00", "status": "granted",
                                                "effective_from": "2026-01-01"})
    counter = iter(range(10**9))

    def items(tag: int) -> list[dict]:
        return [{"invoice_ref": f"R{tag}-{i}", "buyer_ref": f"B{i % 50}", "currency": "EUR",
                 "amount": f"{100 + i % 900}.50", "issue_date": "2026-02-01", "due_date": "2026-03-31"}
                for i in range(BATCH)]

    def new_batch() -> None:
        r = api.post("/v1/invoices/batch", json={"items": items(next(counter))})
        assert r.status_code == 200 and r.json()["created"] == BATCH, r.text[:300]

    fixed = items(-1)
    one = {k: v for k, v in fixed[0].items() if k != "invoice_ref"}
    api.post("/v1/invoices/batch", json={"items": fixed}, headers={"Idempotency-Key": "bench"})
    tag = api.get("/v1/exposure").headers["etag"]
    results = {
        "reference: GET /v1/buyers/B1": _median(lambda: api.get("/v1/buyers/B1"), runs * 10),
        "POST batch of 5,000 new invoices": _median(new_batch, runs),
        "POST the same 5,000 again (all unchanged)": _median(
            lambda: api.post("/v1/invoices/batch", json={"items": fixed}), runs),
        "replay with Idempotency-Key": _median(
            lambda: api.post("/v1/invoices/batch", json={"items": fixed}, headers={"Idempotency-Key": "bench"}),
            runs),
        "PUT one invoice (refreshes one buyer: 100+ invoices)": _median(
            lambda: api.put(f"/v1/invoices/ONE-{next(counter)}", json=one), runs * 4),
        "GET /v1/exposure (200)": _median(lambda: api.get("/v1/exposure"), runs * 10),
        "GET /v1/exposure with If-None-Match (304)": _median(
            lambda: api.get("/v1/exposure", headers={"If-None-Match": tag}), runs * 10),
    }
    api.close()
    db.dispose()
    return results


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        backends = {"sqlite": f"sqlite:///{Path(tmp) / 'bench.db'}", "postgresql": _postgres_url()}
        for name, url in backends.items():
            results = bench(url, args.runs)
            reference = next(iter(results.values()))
            print(f"\n{name} (median of runs; ratio to the reference)")
            for label, seconds in results.items():
                print(f"  {label:<48} {seconds * 1000:9.1f} ms  x{seconds / reference:8.1f}")


if __name__ == "__main__":
    main()
