"""The `coverwatch` command: serve, worker, migrate, tenants, recompute, scan, revaluations, openapi."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from app.core.config import get_settings
from app.core.db import Database
from app.core.money import is_currency

cli = typer.Typer(help="Coverwatch: receivables exposure against credit-insurance cover.", no_args_is_help=True)
tenants_cli = typer.Typer(help="Tenants (insured companies).", no_args_is_help=True)
cli.add_typer(tenants_cli, name="tenants")


@cli.command()
def migrate() -> None:
    """Migrate the database (COVERWATCH_DATABASE_URL) to the latest schema."""
    from app.migrate import upgrade

    upgrade(get_settings().database_url)
    typer.echo("database at the latest schema")


@tenants_cli.command("create")
def tenants_create(
    name: Annotated[str, typer.Option(help="The insured company's name")],
    currency: Annotated[str, typer.Option(help="Base currency, ISO 4217")] = "EUR",
) -> None:
    """Create a tenant; prints its id and an admin API key (shown once)."""
    from app.tenants.service import create_tenant

    if not is_currency(currency):
        raise typer.BadParameter(f"{currency} is not an ISO 4217 currency code", param_hint="--currency")
    db = Database(get_settings().database_url)
    with db.session() as session, session.begin():
        tenant, key = create_tenant(session, name, currency)
    typer.echo(f"tenant_id: {tenant.id}")
    typer.echo(f"admin_key: {key}")


@cli.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port")] = 8000,
    demo: Annotated[bool, typer.Option(help="Create (once) a demo tenant with data and print a key")] = False,
    migrate_first: Annotated[bool, typer.Option("--migrate/--no-migrate", help="Migrate before serving")] = True,
    rotate_key: Annotated[
        bool, typer.Option("--rotate-key", help="With --demo: revoke the kept demo key and print a new one")
    ] = False,
    scheduler: Annotated[bool | None, typer.Option(
        "--scheduler/--no-scheduler",
        help="Run the periodic jobs in this process (default: COVERWATCH_SCHEDULER_ENABLED, true); "
             "--no-scheduler when `coverwatch worker` runs them")] = None,
) -> None:
    """Serve the API with uvicorn (migrating first)."""
    import uvicorn

    from app.main import create_app
    from app.migrate import upgrade
    from app.webhooks.crypto import SecretKeyMissing, check_configuration

    settings = get_settings()
    if scheduler is not None:
        settings = settings.model_copy(update={"scheduler_enabled": scheduler})
    try:
        check_configuration(settings)
    except SecretKeyMissing as exc:
        typer.echo(f"coverwatch: {exc}", err=True)
        raise typer.Exit(2) from exc
    if migrate_first:
        upgrade(settings.database_url)
    if demo:
        from app.demo import ensure_demo

        key = ensure_demo(Database(settings.database_url), settings, rotate_key=rotate_key)
        base = f"http://{host}:{port}"
        typer.echo("")
        typer.echo(f"Coverwatch demo at {base}  (console: open it and sign in with the key; API docs: {base}/docs)")
        typer.echo(f"Admin API key: {key}")
        typer.echo(f"Try: curl -H 'Authorization: Bearer {key}' {base}/v1/exposure")
        typer.echo("")
    uvicorn.run(create_app(settings), host=host, port=port, log_level=settings.log_level.lower())


@cli.command()
def recompute(
    check: Annotated[bool, typer.Option("--check", help="Only compare: exit 1 if a stored row differs")] = False,
    tenant: Annotated[str | None, typer.Option(help="One tenant id (default: all)")] = None,
) -> None:
    """Recompute every buyer's exposure from scratch (and apply date-driven changes)."""
    from app.exposure import jobs

    settings = get_settings()
    db = Database(settings.database_url)
    differences = jobs.recompute(db, settings, tenant_id=tenant, check_only=check)
    for line in differences:
        typer.echo(line)
    if check:
        if differences:
            typer.echo(f"{len(differences)} difference(s) between stored and recomputed exposure", err=True)
            raise typer.Exit(1)
        typer.echo("stored exposure matches a recomputation from scratch")
    elif differences:
        typer.echo(f"{len(differences)} tenant(s) not recomputed", err=True)
        raise typer.Exit(1)
    else:
        typer.echo("exposure recomputed")


@cli.command()
def scan(force: Annotated[bool, typer.Option(help="Scan even if today's scan ran or its hour has not come")] = False
         ) -> None:
    """Run the daily scan now: revalue, alerts, exposure snapshot, idempotency purge."""
    from app.scheduling.jobs import daily_scan_run

    settings = get_settings()
    run = daily_scan_run(Database(settings.database_url), settings, force=force)
    typer.echo(f"scanned {len(run.done)} tenant(s)" + (f", {len(run.failed)} failed" if run.failed else ""))
    if run.failed:
        raise typer.Exit(1)


@cli.command()
def revaluations(
    tenant: Annotated[str | None, typer.Option(help="One tenant id (default: all)")] = None,
    requeue: Annotated[bool, typer.Option(
        "--requeue", help="First queue a revaluation for tenants left with stale rows by a failed one")] = False,
) -> None:
    """Run the queued background revaluations now, and wait until they are done (exit 1 if one failed)."""
    from app.exposure.revaluation import FAILED, requeue_stale, run_pending

    settings = get_settings()
    db = Database(settings.database_url)
    only = [tenant] if tenant else None
    if requeue:
        for tenant_id in requeue_stale(db, settings, only):
            typer.echo(f"tenant {tenant_id}: stale rows requeued")
    outcomes = run_pending(db, settings, tenant_ids=only)
    db.dispose()
    for o in outcomes:
        typer.echo(f"revaluation {o.id} (tenant {o.tenant_id}): {o.state}")
    typer.echo(f"{len(outcomes)} revaluation(s) run")
    if any(o.state == FAILED for o in outcomes):
        raise typer.Exit(1)


@cli.command()
def worker(
    once: Annotated[bool, typer.Option("--once", help="Run each periodic job once, then exit")] = False,
) -> None:
    """Run the scheduler (webhook dispatch, background revaluations, date-driven revaluation, daily scan) apart
    from the web processes.

    Start web processes with COVERWATCH_SCHEDULER_ENABLED=false (or `serve --no-scheduler`) when workers run
    the jobs; any number of workers may share one PostgreSQL (jobs lock per job and tenant)."""
    import signal
    import threading

    from app.scheduling import jobs
    from app.scheduling.scheduler import start

    settings = get_settings()
    db = Database(settings.database_url)
    if once:
        from app.exposure.revaluation import FAILED, run_pending

        sent = jobs.dispatch(db, settings)
        background = run_pending(db, settings)
        revalued = jobs.revalue_run(db, settings)
        scanned = jobs.daily_scan_run(db, settings)
        failed = len(revalued.failed) + len(scanned.failed) + sum(o.state == FAILED for o in background)
        typer.echo(f"dispatched {sent}, background revaluations {len(background)}, revalued {len(revalued.done)}, "
                   f"scanned {len(scanned.done)} tenant(s); failed: {failed}")
        db.dispose()
        raise typer.Exit(1 if failed else 0)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    scheduler = start(db, settings)
    typer.echo("coverwatch worker: scheduler running (Ctrl-C to stop)")
    stop.wait()
    scheduler.shutdown(wait=True)
    db.dispose()


@cli.command("reencrypt-secrets")
def reencrypt_secrets() -> None:
    """Encrypt every webhook secret with the first key of COVERWATCH_SECRET_KEY (after setting it to
    `new,old`); then the old key can be removed."""
    from app.webhooks.crypto import reencrypt_all

    settings = get_settings()
    db = Database(settings.database_url)
    with db.session() as session, session.begin():
        count = reencrypt_all(session, settings)
    db.dispose()
    typer.echo(f"{count} webhook endpoint(s) re-encrypted with the first key")


@cli.command("import")
def import_(
    kind: Annotated[str, typer.Argument(help="buyers | invoices | payments | limits")],
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="The CSV file")],
    tenant: Annotated[str, typer.Option(help="The tenant id")],
    report: Annotated[Path | None, typer.Option(help="Rejected rows (default FILE.rejected.csv)")] = None,
    batch_size: Annotated[int, typer.Option(help="Rows per transaction")] = 5000,
) -> None:
    """Import a CSV through the API's validation and ingest path, in batches; idempotent."""
    from app.imports.cli import ImportFailed, run

    if kind not in ("buyers", "invoices", "payments", "limits"):
        raise typer.BadParameter("one of buyers, invoices, payments, limits", param_hint="KIND")
    try:
        tally = run(kind, file, tenant, get_settings(), report=report, batch_size=batch_size)
    except ImportFailed as exc:
        typer.echo(f"import failed: {exc}", err=True)
        raise typer.Exit(2) from exc
    c = tally.counts
    rate = tally.rows / tally.seconds if tally.seconds else 0
    typer.echo(f"{tally.rows} rows, {tally.items} items: {c['created']} created, {c['updated']} updated, "
               f"{c['unchanged']} unchanged, {c['rejected']} rejected in {tally.seconds:.1f} s "
               f"({rate:.0f} rows/s)")
    if c["rejected"]:
        typer.echo(f"rejected rows: {report or file.with_name(file.stem + '.rejected.csv')}")
        raise typer.Exit(1)


@cli.command()
def openapi(
    output: Annotated[Path, typer.Option(help="Where to write the spec")] = Path("openapi/openapi.json"),
) -> None:
    """Write the OpenAPI document generated from the code."""
    from app.openapi import render

    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(render())
    typer.echo(f"wrote {output}")


def main() -> None:
    from app.core.runtime import tune_interpreter

    tune_interpreter()
    cli()


if __name__ == "__main__":
    main()
    sys.exit(0)
