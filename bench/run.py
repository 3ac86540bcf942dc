"""The portfolio benchmark: the service as in production, measured over HTTP beside raw SQL references.

    make bench                       (or: uv run python -m bench.run)
    uv run python -m bench.run --invoices 1000000 --buyers 50000      # the issue's full size (or --full)
    uv run python -m bench.run --only sqlite --profile                # py-spy samples the server

For each database (SQLite file, then PostgreSQL database `bench`, dropped and created afresh), it migrates,
starts the service in its own process on 127.0.0.1 (uvicorn, two worker processes; `--workers 1` runs
`coverwatch serve`), loads a generated portfolio
(bench/portfolio.py) through the API from this process, then measures each figure beside a reference taken
in the same run on the same database: raw `executemany` and `COPY` of the same rows for ingest, a raw read of
the stored row for a buyer's exposure, a naive SQL sum over the ledger for the portfolio and country views.
Results: one table on stdout and in bench/RESULTS.md (with the machine's cores and memory). Figures are
medians and percentiles; nothing here asserts a time.
"""

from __future__ import annotations

import argparse
import csv
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine, make_url

from bench.portfolio import PRIMARY, TODAY, TOP_UP, Portfolio, extra_invoices, generate

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "RESULTS.md"
BATCH = 5000
SECRET = "bench-secret-key-not-for-production-0123456789"
WEBHOOKS = 2000  # events sent in the dispatch figure
RUNNERS = 2  # workers sharing a background revaluation (one per core of the machine the targets are set for)
PG_DEFAULT = "postgresql+psycopg://postgres@127.0.0.1:5432/bench"


# ---------------------------------------------------------------------------------------------- helpers
def pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def samples_of(fn: Callable[[], Any], n: int) -> list[float]:
    return [timed(fn)[0] for _ in range(n)]


def check(response: httpx.Response, *codes: int) -> httpx.Response:
    if response.status_code not in (codes or (200, 201)):
        raise RuntimeError(f"{response.request.method} {response.request.url}: {response.status_code} "
                           f"{response.text[:400]}")
    return response


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _tree(pid: int) -> list[int]:
    return [pid] + [int(c) for c in _children(pid)]


def _status_kb(pid: int, field: str, name: str = "status") -> int:
    """A `Field:  N kB` line of /proc/PID/status (or smaps_rollup), 0 for a process gone."""
    try:
        for line in Path(f"/proc/{pid}/{name}").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def peak_rss_mb(pid: int) -> float:
    """VmHWM (peak resident set) of the process and of its children, added up, in MB: an upper bound of the
    server's peak, each process's own peak counted whenever it came."""
    return sum(_status_kb(p, "VmHWM") for p in _tree(pid)) / 1024


class MemoryWatch:
    """The server's memory as it runs: the largest total of its processes' resident sets (RSS) at one moment,
    sampled every `every` seconds from their status (counters: reading them stops nothing), in MB. A peak shorter
    than `every` can be missed."""

    def __init__(self, pid: int, every: float = 0.1) -> None:
        self.pid, self.every = pid, every
        self.rss = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="memory-watch", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.rss = max(self.rss, sum(_status_kb(p, "VmRSS") for p in _tree(self.pid)) / 1024)
            self._stop.wait(self.every)

    def pss(self) -> float:
        """The processes' proportional sets now (a page they share, such as the libraries' code, counted once), in
        MB. Not sampled: the kernel walks a process's page tables to count them, and the process waits for it to
        map memory meanwhile (in a run that sampled it every 0.1 s, a 304's p99 was 5.9 ms, 2.5 in the run
        before)."""
        return sum(_status_kb(p, "Pss", "smaps_rollup") for p in _tree(self.pid)) / 1024

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def _children(pid: int) -> list[str]:
    try:
        found = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return []
    return found + [g for c in found for g in _children(int(c))]


def machine() -> str:
    mem = next((int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines()
                if line.startswith("MemTotal:")), 0)
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    return (f"{os.cpu_count()} cores ({cpu}), {mem / 1024 / 1024:.1f} GiB memory, Python {platform.python_version()}, "
            f"{platform.system()} {platform.release()}")


# ---------------------------------------------------------------------------------------------- databases
def sqlite_url(tmp: Path) -> str:
    return f"sqlite:///{tmp / 'bench.db'}"


def postgres_url() -> str:
    """The benchmark's own database (COVERWATCH_BENCH_POSTGRES_URL, default .../bench), dropped and re-created."""
    url = make_url(os.environ.get("COVERWATCH_BENCH_POSTGRES_URL", PG_DEFAULT))
    admin = create_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{url.database}" WITH (FORCE)'))
        conn.execute(text(f'CREATE DATABASE "{url.database}"'))
    admin.dispose()
    return url.render_as_string(hide_password=False)


# ---------------------------------------------------------------------------------------------- the server
PROFILED_COMMANDS = ("import", "scan", "recompute")


def spied(output: Path, command: list[str]) -> list[str]:
    """`command` under py-spy (its subprocesses too), collapsed stacks to `output`."""
    spy = Path(sys.executable).parent / "py-spy"
    return [str(spy), "record", "--format", "raw", "--rate", "50", "--output", str(output), "--nonblocking",
            "--subprocesses", "--", *command]


class Server:
    """The service in its own process, as in production: uvicorn with `workers` worker processes (the README's
    several-workers form, metrics in prometheus-client's multiprocess mode), optionally under py-spy. With one
    worker, a read shares its interpreter with a batch being written and waits for it (the GIL)."""

    def __init__(self, url: str, profile: Path | None, workers: int = 1) -> None:
        self.port = free_port()
        self.env = {**os.environ, "COVERWATCH_DATABASE_URL": url, "COVERWATCH_TODAY": TODAY.isoformat(),
                    "COVERWATCH_SCHEDULER_ENABLED": "false", "COVERWATCH_SECRET_KEY": SECRET,
                    "COVERWATCH_WEBHOOK_ALLOWED_NETWORKS": "127.0.0.0/8",
                    "COVERWATCH_LOG_LEVEL": "WARNING"}
        self.profile = profile
        self.metrics_dir: Path | None = None
        if workers > 1:
            self.metrics_dir = Path(tempfile.mkdtemp(prefix="coverwatch-metrics-"))
            self.env["PROMETHEUS_MULTIPROC_DIR"] = str(self.metrics_dir)
            command = [sys.executable, "-m", "uvicorn", "--factory", "app.main:create_app", "--host", "127.0.0.1",
                       "--port", str(self.port), "--workers", str(workers), "--log-level", "warning",
                       "--no-access-log"]
        else:
            command = [sys.executable, "-m", "app.cli", "serve", "--no-migrate", "--port", str(self.port)]
        if profile is not None:
            command = spied(profile, command)
        self.process = subprocess.Popen(command, env=self.env, cwd=ROOT, stdout=subprocess.DEVNULL,
                                        stderr=subprocess.PIPE if profile is None else subprocess.DEVNULL)
        self.base = f"http://127.0.0.1:{self.port}"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                err = self.process.stderr.read().decode() if self.process.stderr else ""
                raise RuntimeError(f"server exited: {err}")
            try:
                if httpx.get(f"{self.base}/healthz", timeout=1).status_code == 200:
                    self.memory = MemoryWatch(self.process.pid)
                    return
            except httpx.HTTPError:
                time.sleep(0.2)
        raise RuntimeError("server did not start within 60 s")

    def memory_mb(self) -> tuple[float, float, float]:
        """The server's peak RSS so far (its processes' added up at one moment, sampled), its PSS now, and its
        processes' own peaks (VmHWM) added up."""
        return self.memory.rss, self.memory.pss(), peak_rss_mb(self.process.pid)

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        """`coverwatch ARGS`; with profiling, the long ones (imports, scan, recompute) under py-spy too, each to a
        file of its own beside the server's (`profile-sqlite-import-invoices.txt`)."""
        env = {k: v for k, v in self.env.items() if k != "PROMETHEUS_MULTIPROC_DIR"}  # the web workers' only
        command = [sys.executable, "-m", "app.cli", *args]
        if self.profile is not None and args[0] in PROFILED_COMMANDS:
            which = "-".join(a.lstrip("-") for a in args[:2])  # import-invoices, scan-force
            command = spied(self.profile.with_name(f"{self.profile.stem}-{which}.txt"), command)
        return subprocess.run(command, env=env, cwd=ROOT, capture_output=True, text=True, check=False)

    def stop(self) -> None:
        self.memory.stop()
        self.process.send_signal(signal.SIGINT)
        try:
            self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        if self.metrics_dir is not None:
            shutil.rmtree(self.metrics_dir, ignore_errors=True)


# ---------------------------------------------------------------------------------------------- webhooks
def _receive(port: Any, received: Any) -> None:
    """The receiver's process: answers 204 to every POST and counts them in `received` (shared memory). HTTP/1.1,
    connections kept alive, as web servers keep them."""
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("content-length") or 0))
            self.send_response(204)
            self.end_headers()
            with received.get_lock():
                received.value += 1

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    port.value = server.server_address[1]
    server.serve_forever()


class Receiver:
    """A webhook receiver on 127.0.0.1 answering 204 to every POST, counting them: in its own process, as a real
    receiver is (in the dispatcher's process it took a share of the same interpreter's time)."""

    def __init__(self) -> None:
        import multiprocessing

        context = multiprocessing.get_context("fork")
        self._port, self._received = context.Value("i", 0), context.Value("q", 0)
        self.process = context.Process(target=_receive, args=(self._port, self._received), daemon=True)
        self.process.start()
        deadline = time.monotonic() + 30
        while not self._port.value and time.monotonic() < deadline:
            time.sleep(0.01)
        self.url = f"http://127.0.0.1:{self._port.value}/hook"

    @property
    def received(self) -> int:
        return int(self._received.value)

    def close(self) -> None:
        self.process.terminate()
        self.process.join(timeout=10)


def webhook_dispatch(api: httpx.Client, url: str, tenant_id: str, n: int) -> tuple[float, int]:
    """`n` events queued for an endpoint on a local receiver, then sent by the dispatcher (its SENDERS threads, in
    this process, as `coverwatch worker` runs it): seconds taken and deliveries received."""
    from sqlalchemy import select

    from app.core.config import Settings
    from app.core.db import Database
    from app.webhooks.dispatcher import dispatch_pending
    from app.webhooks.models import WebhookEndpoint
    from app.webhooks.service import emit_many

    receiver = Receiver()
    db = Database(url)
    try:
        check(api.post("/v1/webhook-endpoints", json={"url": receiver.url, "event_types": ["ping"]}), 201)
        with db.session(tenant_id) as session, session.begin():
            endpoints = list(session.scalars(select(WebhookEndpoint).where(WebhookEndpoint.url == receiver.url)))
            for start in range(0, n, 1000):
                emit_many(session, tenant_id, [("ping", {"n": i}) for i in range(start, min(n, start + 1000))],
                          endpoints=endpoints)
        settings = Settings(database_url=url, secret_key=SECRET, webhook_allowed_networks="127.0.0.0/8",
                            scheduler_enabled=False)
        t, _ = timed(lambda: dispatch_pending(db, settings, max_attempts=2 * n, tenant_ids=[tenant_id]))
        return t, receiver.received
    finally:
        receiver.close()
        db.dispose()


# ---------------------------------------------------------------------------------------------- references
def raw_ingest(engine: Engine, tenant_id: str, rows: list[dict]) -> dict[str, float]:
    """Insert the same invoices, raw, into a scratch copy of the invoices table: executemany, and COPY."""
    buyer_ids = {}
    with engine.connect() as conn:
        for ref, bid in conn.execute(text("SELECT ref, id FROM buyers WHERE tenant_id = :t"), {"t": tenant_id}):
            buyer_ids[ref] = bid
    sqlite = engine.dialect.name == "sqlite"
    now = datetime.now(UTC)
    scale = (lambda a: int(Decimal(a).scaleb(4))) if sqlite else Decimal
    params = [(tenant_id, r["invoice_ref"], buyer_ids[r["buyer_ref"]], "invoice", r["currency"], scale(r["amount"]),
               r["issue_date"], r["due_date"], r["due_date"], scale(r["amount"]), 1, now, now) for r in rows]
    columns = ("tenant_id, ref, buyer_id, kind, currency, amount, issue_date, due_date, original_due_date, "
               "open_balance, revision, created_at, updated_at")
    out: dict[str, float] = {}
    raw = engine.raw_connection()
    try:
        cur = raw.cursor()
        if sqlite:
            cur.execute("DROP TABLE IF EXISTS bench_raw")
            cur.execute("CREATE TABLE bench_raw AS SELECT * FROM invoices WHERE 0")
            raw.commit()
            marks = ", ".join("?" * 13)
            start = time.perf_counter()
            cur.execute("BEGIN")
            cur.executemany(f"INSERT INTO bench_raw ({columns}) VALUES ({marks})", params)
            raw.commit()
            out["executemany"] = time.perf_counter() - start
        else:
            cur.execute("DROP TABLE IF EXISTS bench_raw")
            cur.execute("CREATE TABLE bench_raw (LIKE invoices INCLUDING DEFAULTS INCLUDING INDEXES)")
            raw.commit()
            marks = ", ".join(["%s"] * 13)
            start = time.perf_counter()
            cur.executemany(f"INSERT INTO bench_raw ({columns}) VALUES ({marks})", params)
            raw.commit()
            out["executemany"] = time.perf_counter() - start
            cur.execute("TRUNCATE bench_raw")
            raw.commit()
            start = time.perf_counter()
            with cur.copy(f"COPY bench_raw ({columns}) FROM STDIN") as copy:  # type: ignore[attr-defined]
                for row in params:
                    copy.write_row(row)
            raw.commit()
            out["copy"] = time.perf_counter() - start
        cur.execute("DROP TABLE bench_raw")
        raw.commit()
    finally:
        raw.close()
    return out


def raw_row_read(engine: Engine, tenant_id: str, buyer_ref: str, n: int) -> list[float]:
    """The stored exposure row of one buyer, read with one SQL statement (connection kept, as a pool does)."""
    with engine.connect() as conn:
        bid = conn.execute(text("SELECT id FROM buyers WHERE tenant_id = :t AND ref = :r"),
                           {"t": tenant_id, "r": buyer_ref}).scalar_one()
        sql = text("SELECT * FROM buyer_exposures WHERE tenant_id = :t AND buyer_id = :b")
        return samples_of(lambda: conn.execute(sql, {"t": tenant_id, "b": bid}).all(), n)


def naive_sums(engine: Engine, tenant_id: str, n: int) -> tuple[list[float], list[float]]:
    """What a portfolio and a country view cost when summed over the ledger (open balances), no stored rows."""
    portfolio = text("SELECT count(DISTINCT buyer_id), sum(open_balance) FROM invoices "
                     "WHERE tenant_id = :t AND kind = 'invoice' AND open_balance > 0")
    countries = text("SELECT b.country, count(DISTINCT i.buyer_id), sum(i.open_balance) FROM invoices i "
                     "JOIN buyers b ON b.id = i.buyer_id WHERE i.tenant_id = :t AND i.kind = 'invoice' "
                     "AND i.open_balance > 0 GROUP BY b.country")
    with engine.connect() as conn:
        a = samples_of(lambda: conn.execute(portfolio, {"t": tenant_id}).all(), n)
        b = samples_of(lambda: conn.execute(countries, {"t": tenant_id}).all(), n)
    return a, b


# ---------------------------------------------------------------------------------------------- the run
class Figures:
    def __init__(self) -> None:
        self.rows: dict[str, tuple[str, str]] = {}

    def add(self, label: str, value: str, reference: str = "") -> None:
        self.rows[label] = (value, reference)
        print(f"  {label:<58} {value:>22}   {reference}", flush=True)


def ms(seconds: float) -> str:
    return f"{seconds * 1000:,.1f} ms"


MEASURED = 4  # in a bulk load, the batches posted through the API (and timed) before and after the import


def write_csv(path: Path, header: str, rows: list[list[Any]]) -> Path:
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header.split(","))
        writer.writerows(rows)
    return path


def cli_import(server: Server, kind: str, path: Path, tenant_id: str) -> float:
    """`coverwatch import KIND FILE --tenant ID`, as an operator loads a portfolio: the seconds it took. (The import
    revalues alongside its writes in a second process on PostgreSQL; a third helping, as another replica's worker
    would, gave 161 s against 195-234 s for the invoices and 262 s against 215-232 s for the payments: not kept.)"""
    t, out = timed(lambda: server.cli("import", kind, str(path), "--tenant", tenant_id))
    if out.returncode != 0:
        raise RuntimeError(f"import {kind} failed: {out.stdout[-800:]} {out.stderr[-800:]}")
    return t


def load(api: httpx.Client, p: Portfolio, figures: Figures, engine: Engine, tenant_id: str, server: Server,
         bulk: Path | None) -> None:
    """The portfolio through the API. With `bulk` (a directory for the files), as an operator loads a large one:
    buyers, limits and payments by `coverwatch import`, the invoices through the batch endpoint for the first and
    last `MEASURED` batches (timed: the ingest figures at both ends of the load) and by import in between."""
    check(api.put("/v1/policies/P", json=PRIMARY))
    check(api.put("/v1/policies/T", json=TOP_UP))
    check(api.put("/v1/fx-rates", json={"rates": p.fx_rates}))
    for country, body in p.country_limits.items():
        check(api.put(f"/v1/country-limits/{country}", json=body))
    if bulk is not None:
        t = cli_import(server, "buyers", write_csv(bulk / "buyers.csv", "buyer_ref,name,country", [
            [b["ref"], b["name"], b["country"]] for b in p.buyers]), tenant_id)
        print(f"  ({len(p.buyers)} buyers imported in {t:.1f} s)", flush=True)
        limits = [["P", d["buyer_ref"], d["status"], d.get("amount", ""), d["effective_from"]] for d in p.decisions]
        t = cli_import(server, "limits", write_csv(
            bulk / "limits.csv", "policy_ref,buyer_ref,status,amount,effective_from", limits), tenant_id)
        print(f"  ({len(p.decisions)} decisions imported in {t:.1f} s)", flush=True)
    else:
        t, _ = timed(lambda: [check(api.put(f"/v1/buyers/{b['ref']}",
                                            json={"name": b["name"], "country": b["country"]})) for b in p.buyers])
        print(f"  ({len(p.buyers)} buyers in {t:.1f} s)", flush=True)
        t, _ = timed(lambda: [check(api.post("/v1/policies/P/limits", json=d), 201) for d in p.decisions])
        print(f"  ({len(p.decisions)} decisions in {t:.1f} s)", flush=True)
    batches = [p.invoices[i : i + BATCH] for i in range(0, len(p.invoices), BATCH)]
    head, middle, tail = batches, [], []
    if bulk is not None and len(batches) > 2 * MEASURED:
        head, middle, tail = batches[:MEASURED], batches[MEASURED:-MEASURED], batches[-MEASURED:]

    def post(part: list[list[dict]]) -> list[float]:
        times = []
        for items in part:
            elapsed, r = timed(lambda items=items: check(api.post("/v1/invoices/batch", json={"items": items})))
            body = r.json()
            if body["rejected"]:
                raise RuntimeError(f"rejected invoices: {[i for i in body['items'] if i['problem']][:3]}")
            times.append(elapsed / len(items) * BATCH)
            print(f"  (batch of {len(items)}: {elapsed:.1f} s)", flush=True)
        return times

    batch_times = post(head)
    imported = ""
    if middle:
        # As ERPs export a ledger: by customer. (In delivery order, each batch of 5,000 rows touched most of the
        # 50,000 buyers, and the revaluation walked each of them again for every batch: 1,300 rows/s.)
        rows = sorted(([i["invoice_ref"], i["buyer_ref"], "invoice", i["currency"], i["amount"], i["issue_date"],
                        i["due_date"]] for part in middle for i in part), key=lambda r: (r[1], r[5], r[0]))
        path = write_csv(bulk / "invoices.csv", "invoice_ref,buyer_ref,kind,currency,amount,issue_date,due_date", rows)
        t = cli_import(server, "invoices", path, tenant_id)
        print(f"  ({len(rows):,} invoices imported in {t:.1f} s)", flush=True)
        vacuum(engine)  # between the two imports, as autovacuum would (the payments import: 297 s in a run without)
        imported = f"; {len(rows):,} of them by `coverwatch import` in {t:,.0f} s ({len(rows) / t:,.0f} rows/s)"
    batch_times += post(tail)
    full = [t for t, items in zip(batch_times, head + tail, strict=True) if len(items) == BATCH] or batch_times
    reference = raw_ingest(engine, tenant_id, batches[0])
    ref_text = f"executemany {BATCH / reference['executemany']:,.0f}/s"
    if "copy" in reference:
        ref_text += f", COPY {BATCH / reference['copy']:,.0f}/s"
    rate = BATCH / statistics.median(full)
    figures.add("batch ingest, 5,000 invoices over many buyers", f"{rate:,.0f} invoices/s",
                f"{ref_text} (x{BATCH / reference['executemany'] / rate:,.0f})")
    figures.add("  first batch / last batch", f"{BATCH / full[0]:,.0f} / {BATCH / full[-1]:,.0f} inv/s",
                f"{len(p.invoices):,} invoices loaded, the last batch on {len(p.invoices) - BATCH:,} stored "
                f"(cost per invoice x{full[-1] / full[0]:.2f} the first's){imported}")
    if bulk is not None:
        rows = [[pay["payment_ref"], pay["buyer_ref"], pay["amount"], pay["currency"], pay["received_on"],
                 a["invoice_ref"], a["amount"]] for pay in p.payments for a in pay["allocations"]]
        header = "payment_ref,buyer_ref,amount,currency,received_on,allocated_invoice_ref,allocated_amount"
        t = cli_import(server, "payments", write_csv(bulk / "payments.csv", header, rows), tenant_id)
        print(f"  ({len(p.payments)} payments imported in {t:.1f} s)", flush=True)
    else:
        t, _ = timed(lambda: [check(api.post("/v1/payments/batch", json={"items": p.payments[i : i + 1000]}))
                              for i in range(0, len(p.payments), 1000)])
        print(f"  ({len(p.payments)} payments in {t:.1f} s)", flush=True)
    vacuum(engine)


def vacuum(engine: Engine) -> None:
    """What autovacuum does in production during and after a load this size (it is off on this kind of test
    machine): without statistics, plans are made for empty tables; without the vacuum, the rows each walk rewrote
    stay as dead versions (buyer_exposures: 50,000 rows and 710,000 dead ones, 295 MB, at the end of a run) that
    every scan of the table reads again. PostgreSQL only."""
    if engine.dialect.name == "postgresql":
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("VACUUM ANALYZE"))


def scan_by_workers(server: Server) -> subprocess.CompletedProcess[str]:
    """`coverwatch scan --force`, its walk (a revaluation) shared with RUNNERS - 1 more workers, as the workers of
    other replicas would help it (`coverwatch revaluations` each, started again until the scan is over; on SQLite,
    one writer: nothing to share)."""
    if server.env["COVERWATCH_DATABASE_URL"].startswith("sqlite"):
        return server.cli("scan", "--force")
    done = threading.Event()

    def helper() -> None:
        while not done.is_set():
            server.cli("revaluations")
            done.wait(0.5)

    helpers = [threading.Thread(target=helper) for _ in range(RUNNERS - 1)]
    for h in helpers:
        h.start()
    try:
        return server.cli("scan", "--force")
    finally:
        done.set()
        for h in helpers:
            h.join()


def measure(name: str, url: str, p: Portfolio, args: argparse.Namespace, tmp: Path
            ) -> tuple[Figures, dict[str, Any]]:
    from app.core.db import Database
    from app.migrate import upgrade
    from app.tenants.service import create_tenant

    print(f"\n== {name}: {url.split('@')[-1]}", flush=True)
    upgrade(url)
    db = Database(url)
    with db.session() as session, session.begin():
        tenant, key = create_tenant(session, "Bench SAS", "EUR")
        tenant_id = tenant.id
    db.dispose()
    engine = create_engine(url)
    profile = ROOT / "bench" / f"profile-{name}.txt" if args.profile else None
    if profile is not None:
        for stale in profile.parent.glob(f"{profile.stem}*.txt"):  # an earlier run's
            stale.unlink()
    server = Server(url, profile, workers=args.workers)
    figures = Figures()
    info: dict[str, Any] = {}
    api = httpx.Client(base_url=server.base, headers={"Authorization": f"Bearer {key}"}, timeout=3600)
    try:
        bulk = tmp / f"{name}-files" if args.bulk else None
        if bulk is not None:
            bulk.mkdir()
        load(api, p, figures, engine, tenant_id, server, bulk)
        large, small = p.large_buyer, p.small_buyer
        n_large = sum(1 for i in p.invoices if i["buyer_ref"] == large)
        info["large_open"] = n_large

        # single-invoice PUTs
        def put_one(buyers: list[str], tag: str) -> Callable[[], Any]:
            counter = iter(range(10**9))

            def run() -> None:
                n = next(counter)
                check(api.put(f"/v1/invoices/{tag}-{n}",
                              json={"buyer_ref": buyers[n % len(buyers)], "currency": "EUR", "amount": "1200.00",
                                    "issue_date": TODAY.isoformat(),  # as an ERP posts it: issued today
                                    "due_date": (TODAY + timedelta(days=60)).isoformat()}))
            return run

        raw_one = raw_row_read(engine, tenant_id, small, args.samples)
        # As many samples as the reads (a p99 of 25 was their largest): over four small buyers, so that the one
        # whose exposure is read below gets a quarter of them, and on the large buyer (its 20,000 open invoices).
        smalls = [b["ref"] for b in p.buyers[1:5]]
        s_small = samples_of(put_one(smalls, "ONE-S"), args.samples)
        s_large = samples_of(put_one([large], "ONE-L"), args.samples)
        figures.add("single-invoice PUT, small buyer p50 / p99", f"{ms(pct(s_small, 50))} / {ms(pct(s_small, 99))}")
        figures.add(f"single-invoice PUT, large buyer ({n_large:,} open) p50 / p99",
                    f"{ms(pct(s_large, 50))} / {ms(pct(s_large, 99))}")

        # a payment batch of 1,000 on the large buyer, oldest due date first
        pays = [{"payment_ref": f"BIG-{i}", "buyer_ref": large, "currency": "EUR", "amount": "500.00",
                 "received_on": TODAY.isoformat()} for i in range(1000)]
        t, _ = timed(lambda: check(api.post("/v1/payments/batch", json={"items": pays})))
        figures.add("payment batch of 1,000 on the large buyer", f"{t:,.2f} s")

        # reads
        raw_large = raw_row_read(engine, tenant_id, large, args.samples)
        s_one = samples_of(lambda: check(api.get(f"/v1/exposure/buyers/{small}")), args.samples)
        s_big = samples_of(lambda: check(api.get(f"/v1/exposure/buyers/{large}")), args.samples)
        size = len(api.get(f"/v1/exposure/buyers/{large}").content)
        figures.add("one buyer's exposure (small buyer) p99", ms(pct(s_one, 99)),
                    f"raw row read p99 {ms(pct(raw_one, 99))} (x{pct(s_one, 99) / pct(raw_one, 99):,.0f})")
        figures.add("one buyer's exposure (large buyer) p99", f"{ms(pct(s_big, 99))}, {size / 1e6:.1f} MB",
                    f"raw row read p99 {ms(pct(raw_large, 99))} (x{pct(s_big, 99) / pct(raw_large, 99):,.0f})")
        naive_p, naive_c = naive_sums(engine, tenant_id, max(10, args.samples // 10))
        s_port = samples_of(lambda: check(api.get("/v1/exposure")), args.samples)
        s_ctry = samples_of(lambda: check(api.get("/v1/exposure/countries")), args.samples)
        figures.add("portfolio view GET /v1/exposure p99", ms(pct(s_port, 99)),
                    f"naive ledger sum p99 {ms(pct(naive_p, 99))} (x{pct(naive_p, 99) / pct(s_port, 99):,.1f} faster)")
        figures.add("country view GET /v1/exposure/countries p99", ms(pct(s_ctry, 99)),
                    f"naive ledger sum p99 {ms(pct(naive_c, 99))} (x{pct(naive_c, 99) / pct(s_ctry, 99):,.1f} faster)")
        tag = check(api.get("/v1/exposure")).headers["etag"]
        s_304 = samples_of(lambda: check(api.get("/v1/exposure", headers={"If-None-Match": tag}), 304), args.samples)
        figures.add("poll answered 304 p99", ms(pct(s_304, 99)))

        # reads while a 5,000-item batch is written
        items = extra_invoices("DURING", BATCH, [b["ref"] for b in p.buyers[1:]], seed=99)
        done = threading.Event()
        batch_time: list[float] = []

        def writer() -> None:
            with httpx.Client(base_url=server.base, headers=api.headers, timeout=3600) as other:
                batch_time.append(timed(lambda: check(other.post("/v1/invoices/batch", json={"items": items})))[0])
            done.set()

        thread = threading.Thread(target=writer)
        thread.start()
        during: list[float] = []
        codes: dict[int, int] = {}
        # Each read on a connection of its own, as the dashboards of many users poll: a kept-alive connection would
        # stay on whichever worker process accepted it, possibly the one writing the batch.
        while not done.is_set():
            t, r = timed(lambda: httpx.get(f"{server.base}/v1/exposure/buyers/{small}", headers=api.headers))
            during.append(t)
            codes[r.status_code] = codes.get(r.status_code, 0) + 1
            time.sleep(0.005)
        thread.join()
        figures.add("exposure read p99 while a 5,000 batch is written",
                    f"{ms(pct(during, 99))} (max {ms(max(during))})",
                    f"{len(during)} reads, status {codes}, batch {batch_time[0]:.1f} s")

        # tenant-wide changes
        def by_workers(response: httpx.Response) -> tuple[float, str]:
            """Run the revaluation a PUT answered 202 by RUNNERS workers (`coverwatch revaluations` each, as
            `coverwatch worker` on as many replicas: one claims the job, the others help from the other end of
            its buyers) while a dashboard reads: how long it took, the job's state, and the reads meanwhile."""
            started = time.perf_counter()
            workers = [threading.Thread(target=lambda: server.cli("revaluations")) for _ in range(RUNNERS)]
            for worker in workers:
                worker.start()
            reads: list[float] = []
            statuses: dict[int, int] = {}
            while any(worker.is_alive() for worker in workers):
                t, resp = timed(lambda: api.get(f"/v1/exposure/buyers/{small}"))
                reads.append(t)
                statuses[resp.status_code] = statuses.get(resp.status_code, 0) + 1
                time.sleep(0.01)
            took = time.perf_counter() - started
            job = check(api.get(response.headers["location"])).json()
            return took, (f"{job['total']:,} buyers, job {job['state']}; reads meanwhile p99 "
                                 f"{ms(pct(reads, 99))}, {statuses}")

        # One rate of a currency a few buyers invoice in: CHF (1% of the buyers, the target's case), then GBP (5%).
        # Above COVERWATCH_INLINE_REVALUATION_MAX_BUYERS buyers with invoices in it, the PUT queues a revaluation.
        for quote, rate, share in (("CHF", "0.9412", "1%"), ("GBP", "0.8612", "5%")):
            t, r = timed(lambda quote=quote, rate=rate: check(api.put("/v1/fx-rates", json={"rates": [
                {"date": TODAY.isoformat(), "base": "EUR", "quote": quote, "rate": rate}]}), 200, 202))
            label = f"PUT of one FX rate ({quote}: {share} of buyers)"
            if r.status_code == 202:
                took, about = by_workers(r)
                figures.add(label, f"{t:,.2f} s",
                            f"answered 202; revalued by {RUNNERS} workers in {took:,.1f} s: {about}")
            else:
                figures.add(label, f"{t:,.2f} s", "revalued in the request")
        t, _ = timed(lambda: check(api.put("/v1/policies/P", json=PRIMARY)))
        figures.add("PUT of an unchanged policy", f"{t:,.2f} s")

        # a full revaluation: a Top Up ratio change moves every buyer; workers run it while dashboards read
        t_put, r = timed(lambda: check(api.put("/v1/policies/T", json=TOP_UP | {"ratio": "0.9"}), 200, 202))
        if r.status_code == 202:
            took, about = by_workers(r)
            figures.add(f"full revaluation (Top Up ratio: every buyer), by {RUNNERS} workers", f"{took:,.1f} s",
                        f"PUT 202 in {ms(t_put)}; {about}")
        else:
            figures.add("full revaluation (Top Up ratio: every buyer), in the request", f"{t_put:,.2f} s")
        t, received = webhook_dispatch(api, url, tenant_id, WEBHOOKS)
        figures.add("webhook dispatch to a receiver on 127.0.0.1", f"{received / t:,.0f} deliveries/s",
                    f"{received:,} of {WEBHOOKS:,} delivered in {t:.1f} s")
        rss, pss, each = server.memory_mb()
        figures.add("server peak RSS", f"{rss:,.0f} MB",
                    f"its processes' RSS added up, sampled every 0.1 s; each process's own peak added up {each:,.0f} "
                    f"MB; PSS at the end {pss:,.0f} MB")
    finally:
        api.close()
        server.stop()
    t, out = timed(lambda: scan_by_workers(server))
    figures.add(f"daily scan (coverwatch scan --force, {RUNNERS} workers)", f"{t:,.1f} s",
                out.stdout.strip()[:60] or out.stderr[-200:])
    # `recompute --check` compares what every change above left stored with a walk of the whole tenant from scratch
    # (a `recompute` before it would only compare the recompute with itself).
    if not args.no_check:
        t, out = timed(lambda: server.cli("recompute", "--check"))
        verdict = "clean" if out.returncode == 0 else f"{out.stdout.count(chr(10))} difference(s)"
        figures.add("coverwatch recompute --check", f"{t:,.1f} s", verdict)
    engine.dispose()
    if profile is not None:
        info["profiles"] = {path.stem.removeprefix("profile-"): summarise_profile(path)
                            for path in sorted(profile.parent.glob(f"{profile.stem}*.txt"))}
    return figures, info


def summarise_profile(path: Path, top: int = 12) -> list[str]:
    """From py-spy's collapsed stacks of the request threads: the app functions with the largest inclusive share,
    then where the time is spent (self time by package)."""
    inclusive: dict[str, int] = {}
    packages: dict[str, int] = {}
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        frames = stack.split(";")
        if not count.isdigit() or not any("app/" in f and "app/cli.py" not in f for f in frames):
            continue  # idle threads, the event loop
        n = int(count)
        total += n
        names = {f.rsplit(":", 1)[0] + ")" for f in frames if "app/" in f and "app/cli.py" not in f}
        for name in names:
            inclusive[name] = inclusive.get(name, 0) + n
        leaf = frames[-1]
        where = leaf[leaf.rfind("(") + 1 :]
        package = next((part for part in ("sqlalchemy", "psycopg", "pydantic", "sqlite3", "starlette", "fastapi",
                                          "json", "decimal", "uvicorn", "app/") if part in where), "other")
        packages[package] = packages.get(package, 0) + n
    if not total:
        return []
    ranked = sorted(inclusive.items(), key=lambda kv: -kv[1])[:top]
    lines = [f"{n / total:6.1%}  {frame}" for frame, n in ranked]
    lines += ["", "self time by package: " + ", ".join(
        f"{k.rstrip('/')} {v / total:.0%}" for k, v in sorted(packages.items(), key=lambda kv: -kv[1]))]
    return lines


def write_results(results: dict[str, tuple[Figures, dict[str, Any]]], args: argparse.Namespace) -> str:
    names = list(results)
    labels: list[str] = []
    for figures, _ in results.values():
        labels += [label for label in figures.rows if label not in labels]
    header = "| figure | " + " | ".join(f"{n} | {n} reference (same run)" for n in names) + " |"
    lines = [header, "|" + " --- |" * (1 + 2 * len(names))]
    for label in labels:
        cells = []
        for figures, _ in results.values():
            value, reference = figures.rows.get(label, ("", ""))
            cells += [value, reference]
        lines.append(f"| {label.strip()} | " + " | ".join(cells) + " |")
    table = "\n".join(lines)
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    text_ = [f"## Run of {stamp}", "", f"Machine: {machine()}.", "",
             f"Portfolio: {args.invoices:,} invoices over {args.buyers:,} buyers (seed {args.seed}); large buyer "
             f"{next(iter(results.values()))[1].get('large_open', 0):,} invoices; batches of {BATCH:,}; "
             f"{args.samples} samples per read and PUT figure; server: uvicorn, {args.workers} worker process(es). "
             f"Command: `python -m bench.run {' '.join(sys.argv[1:])}`.",
             "", table, ""]
    for _, info in results.values():
        for which, summary in info.get("profiles", {}).items():
            if summary:
                text_ += [f"Profile ({which}, py-spy, share of samples in app code, inclusive):", "", "```",
                          *summary, "```", ""]
    return "\n".join(text_)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--invoices", type=int, default=10_000, help="invoices in the portfolio (default 10,000)")
    parser.add_argument("--buyers", type=int, default=500, help="buyers (default 500)")
    parser.add_argument("--full", action="store_true", help="the issue's size: 1,000,000 invoices, 50,000 buyers")
    parser.add_argument("--seed", type=int, default=8)
    parser.add_argument("--samples", type=int, default=100, help="samples per read figure")
    parser.add_argument("--only", choices=["sqlite", "postgresql"], help="one database only")
    parser.add_argument("--profile", action="store_true", help="run the server under py-spy; top costs in RESULTS")
    parser.add_argument("--workers", type=int, default=2,
                        help="uvicorn worker processes of the server (default 2: one per core of the target machine)")
    parser.add_argument("--no-check", action="store_true", help="skip `recompute --check` at the end")
    parser.add_argument("--output", type=Path, default=RESULTS)
    parser.add_argument("--bulk", action=argparse.BooleanOptionalAction, default=None,
                        help="load buyers, limits, payments and all but the first and last batches of invoices by "
                             "`coverwatch import` (default: above 100,000 invoices)")
    args = parser.parse_args()
    if args.full:
        args.invoices, args.buyers = 1_000_000, 50_000
    if args.bulk is None:
        args.bulk = args.invoices > 100_000
    portfolio = generate(args.invoices, args.buyers, seed=args.seed, large_share=0.02 if args.full else 0.10)
    results: dict[str, tuple[Figures, dict[str, Any]]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        if args.only in (None, "sqlite"):
            results["SQLite"] = measure("sqlite", sqlite_url(Path(tmp)), portfolio, args, Path(tmp))
        if args.only in (None, "postgresql"):
            results["PostgreSQL"] = measure("postgresql", postgres_url(), portfolio, args, Path(tmp))
    report = write_results(results, args)
    print("\n" + report)
    args.output.write_text("# Benchmark results\n\nWritten by `make bench` (bench/run.py); newest run first.\n\n"
                           + report + _previous(args.output))


def _previous(path: Path) -> str:
    """Keep the notes written below the generated part (everything after a line `<!-- notes -->`)."""
    if not path.exists():
        return ""
    text_ = path.read_text()
    marker = "<!-- notes -->"
    return "\n" + text_[text_.index(marker):] if marker in text_ else ""


if __name__ == "__main__":
    main()
