"""Import throughput and memory: a generated invoice CSV through `coverwatch import`, on PostgreSQL (and SQLite).

    uv run python -m bench.import_csv [--rows 1000000] [--buyers 1000] [--batch-size 5000] [--sqlite] [--exports]
                                      [--revalue [--runners 2]] [--check]

Writes the CSV (rows sorted by buyer, as ERP exports usually are; 60-day terms, amounts with a decimal comma
every other row), creates a tenant with a policy, the buyers and a limit each, then runs the real CLI in a
child process and reports its rows per second and peak RSS (the target: 1,000,000 rows at >= 20,000 rows/s
with a peak RSS under 250 MB). A second run of the same file measures the idempotent path (all unchanged).
With --exports, a uvicorn server (a child process, stopped at the end) then streams the invoices export as CSV
and as Excel to a client that counts the bytes, and the server's peak RSS is read from /proc: it stays flat
whatever the number of rows. With --revalue, a correction of the policy's indemnity rate then moves every
invoice's cover, and `--runners` processes of `coverwatch revaluations` (default 2: one owns the job, the other
helps) revalue the portfolio in the background (the issue's "full revaluation" figure); with --check,
`coverwatch recompute --check` runs last.
PostgreSQL: COVERWATCH_TEST_POSTGRES_URL or postgresql+psycopg://postgres@127.0.0.1:5432/test, schema cw_bench_import.
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import subprocess
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from app.core.config import Settings
from app.core.context import system_context
from app.core.db import Database, analyze
from app.cover import service as cover_service
from app.cover.models import LimitDecision
from app.cover.schemas import LimitIn, PolicyIn
from app.exposure.models import BuyerExposure
from app.ledger import service as ledger_service
from app.ledger.models import Buyer
from app.ledger.schemas import BuyerIn
from app.migrate import upgrade
from app.tenants.models import Tenant
from app.tenants.service import create_tenant

TODAY = date(2026, 3, 20)
POLICY = {"insurer": "A", "kind": "whole_turnover", "currency": "EUR", "starts_on": "2026-01-01",
          "ends_on": "2026-12-31", "indemnity_rate": "0.9", "max_credit_period_days": 120, "claim_deadline_days": 60}


def _postgres_url() -> str:
    base = make_url(os.environ.get("COVERWATCH_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"))
    engine = create_engine(base, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text("DROP SCHEMA IF EXISTS cw_bench_import CASCADE"))
        conn.execute(text("CREATE SCHEMA cw_bench_import"))
    engine.dispose()
    return base.update_query_dict({"options": "-csearch_path=cw_bench_import"}).render_as_string(hide_password=False)


def write_csv(path: Path, rows: int, buyers: int) -> None:
    per_buyer = max(1, -(-rows // buyers))
    start = date(2026, 1, 1)
    with path.open("w", encoding="utf-8", newline="") as f:
        f.write("invoice_ref,buyer_ref,currency,amount,issue_date,due_date\r\n")
        for n in range(rows):
            issue = start + timedelta(days=n % 75)
            amount = f"{100 + n % 9000}.{n % 100:02d}"
            if n % 2:
                amount = '"' + amount.replace(".", ",") + '"'
            f.write(f"INV-{n:08d},B{n // per_buyer:05d},EUR,{amount},{issue.isoformat()},"
                    f"{(issue + timedelta(days=60)).isoformat()}\r\n")


def set_up(url: str, buyers: int) -> tuple[str, str]:
    upgrade(url)
    db = Database(url)
    settings = Settings(database_url=url, today=TODAY, scheduler_enabled=False)
    with db.session() as session, session.begin():
        tenant, key = create_tenant(session, "bench import", "EUR")
        ctx = system_context(session, tenant, settings)
        cover_service.put_policy(ctx, "P", PolicyIn.model_validate(POLICY))
        for b in range(buyers):
            ledger_service.upsert_buyer(ctx, f"B{b:05d}", BuyerIn(name=f"Buyer {b}", country="FR"))
            cover_service.add_limit(ctx, "P", LimitIn.model_validate({
                "buyer_ref": f"B{b:05d}", "amount": "500000.00", "status": "granted",
                "effective_from": "2026-01-01"}))
    with db.session() as session, session.begin():  # as autovacuum would, a minute after such a load
        analyze(session, Buyer, BuyerExposure, LimitDecision)
    db.dispose()
    return tenant.id, key


def child_env(url: str) -> dict[str, str]:
    """The environment of a `coverwatch` child process on the benchmark's database and day."""
    return {**os.environ, "COVERWATCH_DATABASE_URL": url, "COVERWATCH_TODAY": TODAY.isoformat()}


def run_import(url: str, tenant_id: str, path: Path, batch_size: int) -> tuple[float, float, str]:
    """(seconds, peak RSS in MB, the CLI's summary line) of one `coverwatch import` in a child process."""
    seconds, done = cli(url, "import", "invoices", str(path), "--tenant", tenant_id, "--batch-size", str(batch_size))
    if done.returncode != 0:
        raise SystemExit(f"import failed ({done.returncode}): {done.stderr[-2000:]}")
    peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024  # Linux: kilobytes
    return seconds, peak_mb, done.stdout.strip().splitlines()[0]


def _peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def measure_exports(url: str, key: str, port: int = 8765) -> None:
    import httpx

    env = {**child_env(url), "COVERWATCH_SCHEDULER_ENABLED": "false", "COVERWATCH_LOG_LEVEL": "WARNING"}
    server = subprocess.Popen([sys.executable, "-m", "uvicorn", "--factory", "app.main:create_app", "--port",
                               str(port), "--log-level", "warning"], env=env)
    try:
        base = f"http://127.0.0.1:{port}"
        for _ in range(100):
            try:
                if httpx.get(f"{base}/healthz").status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        print(f"  server at rest: peak RSS {_peak_rss_mb(server.pid):.0f} MB")
        headers = {"Authorization": f"Bearer {key}"}
        for fmt in ("csv", "xlsx"):
            started, size = time.perf_counter(), 0
            with httpx.stream("GET", f"{base}/v1/exports/invoices?format={fmt}", headers=headers,
                              timeout=3600) as response:
                for chunk in response.iter_bytes():
                    size += len(chunk)
            print(f"  export invoices as {fmt:<4} {time.perf_counter() - started:8.1f} s  {size / 2**20:7.1f} MB  "
                  f"server peak RSS {_peak_rss_mb(server.pid):6.0f} MB")
    finally:
        server.terminate()
        server.wait(timeout=30)


def cli(url: str, *args: str) -> tuple[float, subprocess.CompletedProcess[str]]:
    """(seconds, the finished process) of one `coverwatch` command in a child process."""
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "app.cli", *args], env=child_env(url), capture_output=True,
                          text=True, check=False)
    return time.perf_counter() - started, done


def measure_revaluation(url: str, tenant_id: str, runners: int) -> None:
    """A correction of the policy's indemnity rate from its first day moves every invoice's cover: the change
    answers at once (a background revaluation is queued), then `runners` processes of `coverwatch revaluations`
    revalue every buyer (the first owns the job, the others help)."""
    db = Database(url)
    settings = Settings(database_url=url, today=TODAY, scheduler_enabled=False)
    started = time.perf_counter()
    with db.session() as session, session.begin():
        ctx = system_context(session, session.get(Tenant, tenant_id), settings)
        _, _, job = cover_service.put_policy(ctx, "P", PolicyIn.model_validate(POLICY | {
            "indemnity_rate": "0.85", "effective_from": POLICY["starts_on"]}))
    queued = time.perf_counter() - started
    db.dispose()
    started = time.perf_counter()
    workers = [subprocess.Popen([sys.executable, "-m", "app.cli", "revaluations", "--tenant", tenant_id],
                                env=child_env(url), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
               for _ in range(runners)]
    for worker in workers:
        out, err = worker.communicate()
        if worker.returncode != 0:
            raise SystemExit(f"revaluation failed: {out[-2000:]} {err[-2000:]}")
    seconds = time.perf_counter() - started
    print(f"  full revaluation (every cover moves)    {seconds:8.1f} s  ({runners} runner(s); change answered in "
          f"{queued:.2f} s, {'background job' if job is not None else 'in the change'})")


def measure_check(url: str) -> None:
    seconds, done = cli(url, "recompute", "--check")
    print(f"  recompute --check                        {seconds:8.1f} s  "
          f"{'clean' if done.returncode == 0 else done.stdout[-2000:]}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--buyers", type=int, default=1000)
    parser.add_argument("--batch-size", type=int, default=5000)
    parser.add_argument("--sqlite", action="store_true", help="SQLite instead of PostgreSQL")
    parser.add_argument("--exports", action="store_true", help="Then measure the streamed exports")
    parser.add_argument("--revalue", action="store_true",
                        help="Then measure a full background revaluation (a policy change that moves every cover)")
    parser.add_argument("--runners", type=int, default=2, help="Processes running the revaluation at once")
    parser.add_argument("--check", action="store_true", help="Last, `coverwatch recompute --check`")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{Path(tmp) / 'bench.db'}" if args.sqlite else _postgres_url()
        path = Path(tmp) / "invoices.csv"
        write_csv(path, args.rows, args.buyers)
        size_mb = path.stat().st_size / 2**20
        tenant_id, key = set_up(url, args.buyers)
        print(f"{args.rows} invoice rows ({size_mb:.1f} MB), {args.buyers} buyers, batches of {args.batch_size}, "
              f"{make_url(url).get_backend_name()}")
        for label in ("first import (all created)", "same file again (all unchanged)"):
            seconds, peak_mb, summary = run_import(url, tenant_id, path, args.batch_size)
            rate = float(re.search(r"\((\d+) rows/s\)", summary).group(1)) if "rows/s" in summary else 0
            print(f"  {label:<34} {seconds:8.1f} s  {rate:9.0f} rows/s  peak RSS {peak_mb:6.0f} MB")
            print(f"    {summary}")
        if args.exports:
            measure_exports(url, key)
        if args.revalue:
            measure_revaluation(url, tenant_id, args.runners)
        if args.check:
            measure_check(url)


if __name__ == "__main__":
    main()
