"""`coverwatch import KIND FILE.csv --tenant ID`: the file streamed in batches, with a progress bar on a
terminal, and the rejected rows written to a report file."""

from __future__ import annotations

import csv
import io
import multiprocessing
import time
from multiprocessing.synchronize import Event
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeElapsedColumn

from app.core.config import Settings
from app.core.context import system_context
from app.core.db import Database
from app.core.errors import ProblemError
from app.exposure import revaluation
from app.imports import service
from app.imports.schemas import RejectedRow
from app.tenants.models import Tenant


class ImportFailed(Exception):
    pass


def _revalue_until(settings: Settings, tenant_id: str, written: Event) -> None:
    """Run the tenant's queued revaluations until the import has written its last batch, then once more."""
    db = Database(settings.database_url)
    try:
        while True:
            last = written.is_set()
            revaluation.run_pending(db, settings, tenant_ids=[tenant_id])
            if last:
                return
            written.wait(0.2)
    finally:
        db.dispose()


class _Alongside:
    """A second process that revalues the buyers each committed batch marked stale while the import writes the next
    ones: the walks and the writes share the machine's cores instead of following each other. PostgreSQL only
    (SQLite has one writer at a time). What it has not finished when the import stops writing, the import's own
    run at the end does; a runner that dies leaves its job to the next one (app.exposure.revaluation)."""

    def __init__(self, settings: Settings, tenant_id: str) -> None:
        # Forked before the import opens a connection or starts a thread (the progress bar's): nothing to inherit
        # but the modules already imported, which a spawned interpreter would import again (1.5 s of CPU).
        context = multiprocessing.get_context("fork")
        self.written = context.Event()
        self.process = context.Process(target=_revalue_until, args=(settings, tenant_id, self.written),
                                       name="coverwatch-import-revaluation", daemon=True)
        self.process.start()

    def stop(self) -> None:
        self.written.set()
        self.process.join()


def run(kind: str, path: Path, tenant_id: str, settings: Settings, *, report: Path | None = None,
        batch_size: int = service.BATCH, console: Console | None = None) -> service.Tally:
    """Import `path` into the tenant; returns the tally. Rejected rows go to `report` (default FILE.rejected.csv,
    written only when some are)."""
    console = console or Console(stderr=True)
    report = report or path.with_name(path.stem + ".rejected.csv")
    db = Database(settings.database_url)
    rejected_file = None
    writer = None

    def on_reject(row: RejectedRow) -> None:
        nonlocal rejected_file, writer
        if writer is None:
            rejected_file = report.open("w", newline="", encoding="utf-8")
            writer = csv.writer(rejected_file)
            writer.writerow(["line", "ref", "reason"])
        writer.writerow([row.line, row.ref or "", row.reason])

    size = path.stat().st_size
    started = time.perf_counter()
    alongside = (_Alongside(settings, tenant_id) if kind in service.DEFERRED and db.dialect == "postgresql"
                 else None)
    progress = Progress(
        TextColumn(f"[bold]{kind}"), BarColumn(), DownloadColumn(), TextColumn("{task.fields[rows]} rows"),
        TextColumn("{task.fields[rate]} rows/s"), TextColumn("{task.fields[rejected]} rejected"), TimeElapsedColumn(),
        console=console, disable=not console.is_terminal,
    )
    try:
        with db.session() as session, path.open("rb") as raw, progress:
            tenant = session.get(Tenant, tenant_id)
            if tenant is None:
                raise ImportFailed(f"no tenant '{tenant_id}'")
            ctx = system_context(session, tenant, settings)
            task = progress.add_task(kind, total=size, rows=0, rate=0, rejected=0)
            text = io.TextIOWrapper(raw, encoding="utf-8-sig", newline="")

            def on_batch(tally: service.Tally) -> None:
                elapsed = max(time.perf_counter() - started, 1e-9)
                progress.update(task, completed=raw.tell(), rows=tally.rows, rate=int(tally.rows / elapsed),
                                rejected=tally.counts["rejected"])

            try:
                def revalue() -> None:
                    progress.update(task, completed=size)
                    progress.console.print("Rows written; revaluing the exposure of the buyers they touched ...")
                    if alongside is not None:
                        alongside.stop()
                    revaluation.run_pending(db, settings, tenant_ids=[tenant_id])

                tally = service.import_csv(ctx, kind, text, commit=session.commit, revalue=revalue,
                                           batch_size=batch_size, on_batch=on_batch, on_reject=on_reject)
            except ProblemError as problem:
                session.rollback()
                raise ImportFailed(problem.detail) from problem
            except UnicodeDecodeError as exc:
                session.rollback()
                raise ImportFailed(f"the file is not UTF-8 text ({exc.reason} at byte {exc.start})") from exc
            progress.update(task, completed=size)
    finally:
        if alongside is not None:
            alongside.stop()
        if rejected_file is not None:
            rejected_file.close()
        db.dispose()
    tally.seconds = time.perf_counter() - started
    return tally
