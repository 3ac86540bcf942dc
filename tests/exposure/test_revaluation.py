"""Tenant-wide changes without a tenant-wide request: each change revalues only the buyers it can move, and
beyond the inline maximum it answers 202 and a background revaluation (durable, chunked, resumable) does it."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select, text, update

from app.core.clock import utcnow
from app.core.context import system_context
from app.exposure import jobs, revaluation, service
from app.exposure.models import BuyerExposure, Revaluation
from app.exposure.revaluation import run_pending
from app.tenants.models import Tenant
from tests.helpers import PRIMARY, TOP_UP, buyer, domain_policies, exposure, invoice, limit, ok

# Buyer, country, invoice currency.
BOOK = [("F1", "FR", "EUR"), ("F2", "FR", "EUR"), ("D1", "DE", "EUR"), ("D2", "DE", "USD"), ("I1", "IT", "EUR")]


def book(api, rows=BOOK):
    domain_policies(api)
    ok(api.put("/v1/fx-rates", json={"rates": [{"date": "2026-03-01", "base": "EUR", "quote": "USD",
                                                "rate": "1.2500"}]}))
    for n, (ref, country, currency) in enumerate(rows):
        buyer(api, ref, country)
        limit(api, "50000.00", "2026-01-01", buyer_ref=ref)
        invoice(api, f"INV-{ref}", f"{60000 + n * 1000}.00", "2026-02-10", "2026-04-10", buyer_ref=ref,
                currency=currency)


def rate(indemnity_rate):
    """The primary with another indemnity rate, corrected from its start (every open invoice moves)."""
    return PRIMARY | {"indemnity_rate": indemnity_rate, "effective_from": "2026-01-01"}


def rows(database, tenant):
    """Stored rows by buyer ref: (stale, updated_at, indemnifiable)."""
    with database.session(tenant.id) as session:
        return {r.buyer_ref: (r.stale, r.updated_at, r.indemnifiable) for r in session.scalars(select(BuyerExposure))}


def run(app, database, tenant, **kwargs):
    return run_pending(database, app.state.settings, tenant_ids=[tenant.id], **kwargs)


def clean(app, database, tenant):
    """Stored figures equal a recomputation from scratch, and nothing is left stale."""
    assert jobs.recompute(database, app.state.settings, tenant_id=tenant.id, check_only=True) == []
    with database.session(tenant.id) as session:
        ctx = system_context(session, session.get(Tenant, tenant.id), app.state.settings)
        assert service.check(ctx) == []
    assert not any(stale for stale, _, _ in rows(database, tenant).values())


def test_a_policy_change_for_many_buyers_answers_202_and_is_revalued_in_the_background(
        app, database, tenant, settings_override):
    api = tenant.client
    book(api)
    before = ok(api.get("/v1/exposure/buyers/F1"))
    settings_override(inline_revaluation_max_buyers=3)

    r = api.put("/v1/policies/P", json=rate("0.80"))
    assert r.status_code == 202, r.text
    job = r.json()
    assert r.headers["location"] == job["href"] == f"/v1/revaluations/{job['id']}"
    assert (job["state"], job["total"], job["done"], job["progress"]) == ("queued", 5, 0, 0.0)
    assert job["reason"] == "policy P changed from 2026-01-01"
    # The change is stored; the figures are the previous ones, and say so.
    assert ok(api.get("/v1/policies/P"))["indemnity_rate"] == "0.8"
    stale = exposure(api, "F1")
    assert stale["stale"] is True and stale["indemnifiable"] == before["indemnifiable"]
    assert {b["buyer_ref"]: b["stale"] for b in ok(api.get("/v1/exposure/buyers"))["items"]} == dict.fromkeys(
        ["D1", "D2", "F1", "F2", "I1"], True)
    assert ok(api.get("/v1/exposure"))["stale_buyers"] == 5
    assert ok(api.get(job["href"]))["state"] == "queued"

    [outcome] = run(app, database, tenant, chunk=2)
    assert (outcome.id, outcome.state) == (job["id"], "done")
    done = ok(api.get(job["href"]))
    assert (done["state"], done["total"], done["done"], done["progress"], done["error"]) == ("done", 5, 5, 1.0, None)
    assert done["started_at"] is not None and done["finished_at"] >= done["started_at"]
    after = exposure(api, "F1")
    assert after["stale"] is False and after["indemnifiable"] != before["indemnifiable"]
    # 50,000 primary at 0.80 (the Top Up's 10,000 stays at 0.90).
    assert after["indemnifiable"] == "49000.00"
    assert ok(api.get("/v1/exposure"))["stale_buyers"] == 0
    clean(app, database, tenant)


def test_up_to_the_maximum_a_change_is_revalued_in_the_request(app, database, tenant):
    api = tenant.client
    book(api)
    r = api.put("/v1/policies/P", json=rate("0.80"))
    assert r.status_code == 200 and "location" not in r.headers
    assert exposure(api, "F1")["indemnifiable"] == "49000.00"
    assert ok(api.get("/v1/exposure"))["stale_buyers"] == 0
    assert run(app, database, tenant) == []
    clean(app, database, tenant)


def test_an_unchanged_policy_revalues_nobody(app, database, tenant, settings_override):
    api = tenant.client
    book(api)
    settings_override(inline_revaluation_max_buyers=0)
    stored = rows(database, tenant)
    assert api.put("/v1/policies/P", json=PRIMARY).status_code == 200
    assert rows(database, tenant) == stored
    assert run(app, database, tenant) == []


def test_an_fx_rate_revalues_only_the_buyers_whose_figures_use_it(app, database, tenant, settings_override):
    api = tenant.client
    book(api)
    stored = rows(database, tenant)
    # A currency nobody uses: nobody moves.
    ok(api.put("/v1/fx-rates", json={"rates": [{"date": "2026-03-19", "base": "EUR", "quote": "JPY",
                                                "rate": "160.00"}]}))
    # A rate dated after today, and one older than the rate in force: today's figures do not use them.
    ok(api.put("/v1/fx-rates", json={"rates": [{"date": "2026-03-25", "base": "EUR", "quote": "USD", "rate": "2"},
                                               {"date": "2026-02-01", "base": "EUR", "quote": "USD", "rate": "3"}]}))
    assert rows(database, tenant) == stored

    # USD: only D2, with its USD invoice, moves; in the background when the maximum is 0.
    settings_override(inline_revaluation_max_buyers=0)
    r = api.put("/v1/fx-rates", json={"rates": [{"date": "2026-03-20", "base": "EUR", "quote": "USD",
                                                 "rate": "1.6000"}]})
    assert r.status_code == 202, r.text
    assert (r.json()["total"], r.json()["reason"]) == (1, "FX rates EUR/USD")
    marked = rows(database, tenant)
    assert {ref for ref, (stale, _, _) in marked.items() if stale} == {"D2"}
    assert marked["D2"][1:] == stored["D2"][1:]  # marked, not yet revalued: figures and their time unchanged
    assert {ref: v for ref, v in marked.items() if ref != "D2"} == {ref: v for ref, v in stored.items() if ref != "D2"}
    [outcome] = run(app, database, tenant)
    assert outcome.state == "done"
    assert exposure(api, "D2")["outstanding"] == "39375.00"  # 63,000 USD at 1.60
    clean(app, database, tenant)


def test_an_fx_rate_of_a_policy_currency_revalues_everyone(app, database, tenant, settings_override):
    api = tenant.client
    book(api)
    settings_override(inline_revaluation_max_buyers=0)
    ok(api.put("/v1/policies/S", json=PRIMARY | {"insurer": "US cover", "currency": "GBP",
                                                 "covered_countries": ["US"]}), 202)
    run(app, database, tenant)
    r = api.put("/v1/fx-rates", json={"rates": [{"date": "2026-03-20", "base": "EUR", "quote": "GBP",
                                                 "rate": "0.8500"}]})
    assert r.status_code == 202 and r.json()["total"] == 5
    run(app, database, tenant)
    clean(app, database, tenant)


def test_a_territory_endorsement_revalues_the_buyers_of_those_countries(app, database, tenant, settings_override):
    api = tenant.client
    book(api)
    settings_override(inline_revaluation_max_buyers=0)
    stored = rows(database, tenant)
    r = api.put("/v1/policies/P", json=PRIMARY | {"excluded_countries": ["DE"], "effective_from": "2026-02-01"})
    assert r.status_code == 202 and r.json()["total"] == 2
    assert {ref for ref, (stale, _, _) in rows(database, tenant).items() if stale} == {"D1", "D2"}
    run(app, database, tenant)
    after = rows(database, tenant)
    assert {ref: after[ref] for ref in ("F1", "F2", "I1")} == {ref: stored[ref] for ref in ("F1", "F2", "I1")}
    assert exposure(api, "D1")["covered_primary"] == "0.00"  # delivered 10 Feb, after Germany left the territory
    # A country override moves its country only.
    override = {"excluded_countries": ["DE"], "effective_from": "2026-02-01",
                "country_overrides": {"IT": {"max_credit_period_days": 30}}}
    r = api.put("/v1/policies/P", json=PRIMARY | override)
    assert r.status_code == 202 and r.json()["total"] == 1
    run(app, database, tenant)
    assert exposure(api, "I1")["uncovered"] == "64000.00"  # 59-day terms above the 30 days of Italy
    # Changed or removed, an override moves its country too.
    for rules, uncovered in (({"IT": {"max_credit_period_days": 60}}, "0.00"), ({}, "0.00"),
                             ({"IT": {"max_credit_period_days": 45}}, "64000.00")):
        r = api.put("/v1/policies/P", json=PRIMARY | override | {"country_overrides": rules})
        assert r.status_code == 202 and r.json()["total"] == 1, r.text
        run(app, database, tenant)
        assert exposure(api, "I1")["uncovered"] == uncovered
    # Any other term moves everyone.
    italy = {"IT": {"max_credit_period_days": 45}}
    r = api.put("/v1/policies/P", json=PRIMARY | override | {"country_overrides": italy, "max_credit_period_days": 90})
    assert r.status_code == 202 and r.json()["total"] == 5
    run(app, database, tenant)
    clean(app, database, tenant)


def test_settings_revalue_alerts_in_the_background_and_the_locale_revalues_nobody(
        app, database, tenant, settings_override):
    api = tenant.client
    book(api)
    settings_override(inline_revaluation_max_buyers=0)
    current = ok(api.get("/v1/settings"))
    stored = rows(database, tenant)
    assert api.put("/v1/settings", json=current | {"locale": "en-GB"}).status_code == 200
    assert rows(database, tenant) == stored
    r = api.put("/v1/settings", json=current | {"utilisation_threshold": "0.50"})
    assert r.status_code == 202 and r.json()["total"] == 5
    assert ok(api.get("/v1/settings"))["utilisation_threshold"] == "0.5"
    run(app, database, tenant)
    clean(app, database, tenant)


def test_an_interrupted_revaluation_is_taken_over_after_its_lease_and_finishes(
        app, database, tenant, settings_override):
    api = tenant.client
    book(api)
    settings_override(inline_revaluation_max_buyers=0)
    job = ok(api.put("/v1/policies/P", json=rate("0.85")), 202)

    # One chunk of two buyers committed, then the runner "crashes" holding its lease.
    [outcome] = run(app, database, tenant, chunk=2, max_chunks=1)
    assert outcome.state == "running"
    half = ok(api.get(job["href"]))
    assert (half["state"], half["done"], half["total"], half["progress"]) == ("running", 2, 5, 0.4)
    assert sum(stale for stale, _, _ in rows(database, tenant).values()) == 3
    # While the lease runs, no other runner takes the job.
    assert run(app, database, tenant) == []
    with database.session(tenant.id) as session, session.begin():
        session.execute(update(Revaluation).where(Revaluation.id == job["id"])
                        .values(lease_until=utcnow() - timedelta(seconds=1)))
    [outcome] = run(app, database, tenant, chunk=2)
    assert (outcome.id, outcome.state) == (job["id"], "done")
    done = ok(api.get(job["href"]))
    assert (done["state"], done["done"], done["total"]) == ("done", 5, 5)
    clean(app, database, tenant)


def test_two_changes_in_a_row_end_with_every_row_revalued_with_the_latest_inputs(
        app, database, tenant, settings_override):
    api = tenant.client
    book(api)
    settings_override(inline_revaluation_max_buyers=0)
    first = ok(api.put("/v1/policies/P", json=rate("0.85")), 202)
    # Still queued: the next change joins it.
    joined = ok(api.put("/v1/fx-rates", json={"rates": [{"date": "2026-03-20", "base": "EUR", "quote": "USD",
                                                         "rate": "1.1000"}]}), 202)
    assert joined["id"] == first["id"] and joined["reason"] == "policy P changed from 2026-01-01; FX rates EUR/USD"
    [outcome] = run(app, database, tenant, chunk=2, max_chunks=1)
    assert outcome.state == "running"
    # Running: the next change queues a job of its own, which waits for the first.
    second = ok(api.put("/v1/policies/P", json=rate("0.75")), 202)
    assert second["id"] != first["id"] and second["total"] == 5
    with database.session(tenant.id) as session, session.begin():
        session.execute(update(Revaluation).where(Revaluation.id == first["id"])
                        .values(lease_until=utcnow() - timedelta(seconds=1)))
    outcomes = run(app, database, tenant, chunk=2)
    assert [(o.id, o.state) for o in outcomes] == [(first["id"], "done"), (second["id"], "done")]
    assert exposure(api, "F1")["indemnifiable"] == "46500.00"  # 50,000 x 0.75 + 10,000 x 0.90 (the Top Up)
    clean(app, database, tenant)


def test_a_failing_revaluation_fails_alone_and_can_be_requeued(app, database, make_tenant, settings_override):
    from app.exposure.revaluation import requeue_stale

    a, b = make_tenant("A"), make_tenant("B")
    for t in (a, b):
        book(t.client)
    settings_override(inline_revaluation_max_buyers=0)
    jobs_ = {t.id: ok(t.client.put("/v1/policies/P", json=rate("0.85")), 202)
             for t in (a, b)}
    # A real failure in the database, for tenant A's rows only.
    sqlite = database.dialect == "sqlite"
    trigger = [
        f"CREATE TRIGGER cw_fail BEFORE UPDATE ON buyer_exposures WHEN OLD.tenant_id = '{a.id}' "
        "BEGIN SELECT RAISE(ABORT, 'disk on fire'); END"
    ] if sqlite else [
        "CREATE FUNCTION cw_fail() RETURNS trigger LANGUAGE plpgsql AS "
        "$$ BEGIN RAISE EXCEPTION 'disk on fire'; END $$",
        f"CREATE TRIGGER cw_fail BEFORE UPDATE ON buyer_exposures FOR EACH ROW WHEN (OLD.tenant_id = '{a.id}') "
        "EXECUTE FUNCTION cw_fail()",
    ]
    drop = ["DROP TRIGGER cw_fail"] if sqlite else ["DROP TRIGGER cw_fail ON buyer_exposures",
                                                    "DROP FUNCTION cw_fail()"]
    with database.engine.begin() as conn:
        for statement in trigger:
            conn.execute(text(statement))
    try:
        outcomes = run_pending(database, app.state.settings, tenant_ids=[a.id, b.id])
    finally:
        with database.engine.begin() as conn:
            for statement in drop:
                conn.execute(text(statement))
    assert {o.tenant_id: o.state for o in outcomes} == {a.id: "failed", b.id: "done"}
    failed = ok(a.client.get(jobs_[a.id]["href"]))
    assert failed["state"] == "failed" and "disk on fire" in failed["error"]
    assert ok(a.client.get("/v1/exposure"))["stale_buyers"] == 5
    clean(app, database, b)

    assert requeue_stale(database, app.state.settings, [a.id, b.id]) == [a.id]
    [outcome] = run_pending(database, app.state.settings, tenant_ids=[a.id, b.id])
    assert (outcome.tenant_id, outcome.state) == (a.id, "done")
    clean(app, database, a)


def test_a_revaluation_is_its_tenants_only(make_tenant, settings_override):
    a, b = make_tenant("A"), make_tenant("B")
    book(a.client)
    settings_override(inline_revaluation_max_buyers=0)
    job = ok(a.client.put("/v1/policies/P", json=rate("0.85")), 202)
    assert ok(a.client.get(job["href"]))["id"] == job["id"]
    for client, path in ((b.client, job["href"]), (a.client, "/v1/revaluations/nope")):
        r = client.get(path)
        assert r.status_code == 404 and r.headers["content-type"] == "application/problem+json"
    assert ok(b.client.get("/v1/exposure"))["stale_buyers"] == 0


def test_fx_rates_direct_inverted_and_crossed_move_exactly_the_buyers_they_should(app, database, tenant):
    """Whatever pair moves, the buyers left alone are those whose figures a recomputation leaves alone."""
    api = tenant.client
    domain_policies(api)
    for ref, currency in (("E", "EUR"), ("U", "USD"), ("G", "GBP"), ("C", "CHF"), ("J", "JPY")):
        buyer(api, ref, "FR")
        limit(api, "50000.00", "2026-01-01", buyer_ref=ref)
        invoice(api, f"INV-{ref}", "40000.00", "2026-02-10", "2026-04-10", buyer_ref=ref, currency=currency)
    # GBP and CHF only through crosses (USD/GBP with USD/EUR; CHF/JPY with EUR/JPY ... added one by one).
    steps = [("USD", "EUR", "0.9000"), ("USD", "GBP", "0.8000"), ("EUR", "JPY", "160.00"), ("JPY", "CHF", "0.0060"),
             ("USD", "GBP", "0.7500"), ("EUR", "USD", "1.1000"), ("GBP", "CHF", "1.1000"), ("EUR", "CHF", "0.9500"),
             ("EUR", "GBP", "0.8500"), ("USD", "EUR", "0.9500")]
    for n, (base, quote, value) in enumerate(steps):
        ok(api.put("/v1/fx-rates", json={"rates": [{"date": f"2026-03-{n + 1:02d}", "base": base, "quote": quote,
                                                    "rate": value}]}))
        clean(app, database, tenant)


def test_two_runners_at_once_run_each_revaluation_once(app, database, make_tenant, settings_override):
    """Replicas share one PostgreSQL: SKIP LOCKED and the lease give each job to one runner (on SQLite the
    write lock serialises the claims the same way)."""
    import threading

    tenants = [make_tenant(f"T{n}") for n in range(3)]
    for t in tenants:
        book(t.client)
    settings_override(inline_revaluation_max_buyers=0)
    queued = {ok(t.client.put("/v1/policies/P", json=rate("0.85")), 202)["id"] for t in tenants}
    results: list = []
    start = threading.Barrier(2)

    def runner() -> None:
        start.wait()
        results.extend(run_pending(database, app.state.settings, tenant_ids=[t.id for t in tenants], chunk=2))

    threads = [threading.Thread(target=runner) for _ in range(2)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert sorted((o.id, o.state) for o in results) == sorted((i, "done") for i in queued)
    for t in tenants:
        clean(app, database, t)


def test_finished_revaluations_are_forgotten_after_a_month(app, database, tenant, settings_override):
    from app.exposure.revaluation import purge_finished

    book(tenant.client)
    settings_override(inline_revaluation_max_buyers=0)
    job = ok(tenant.client.put("/v1/policies/P", json=rate("0.85")), 202)
    run(app, database, tenant)
    with database.session(tenant.id) as session, session.begin():
        assert purge_finished(session) == 0
        session.execute(update(Revaluation).values(finished_at=utcnow() - timedelta(days=31)))
        assert purge_finished(session) == 1
    assert tenant.client.get(job["href"]).status_code == 404


def test_coverwatch_worker_runs_the_queued_revaluations(tmp_path):
    """The embedded default's job, run by `coverwatch worker --once` in a process of its own."""
    import os
    import subprocess
    import sys

    from fastapi.testclient import TestClient

    from app.core.config import Settings
    from app.core.db import Database
    from app.main import create_app

    env = {**os.environ, "COVERWATCH_DATABASE_URL": f"sqlite:///{tmp_path / 'cw.db'}",
           "COVERWATCH_TODAY": "2026-03-20"}

    def cli(*args: str) -> str:
        p = subprocess.run([sys.executable, "-m", "app.cli", *args], env=env, capture_output=True, text=True,
                           timeout=120)
        assert p.returncode == 0, p.stdout + p.stderr
        return p.stdout

    cli("migrate")
    key = next(line.split(": ")[1] for line in cli("tenants", "create", "--name", "Acme SAS").splitlines()
               if line.startswith("admin_key"))
    db = Database(env["COVERWATCH_DATABASE_URL"])
    app = create_app(Settings(database_url=db.url, today="2026-03-20", scheduler_enabled=False,
                              inline_revaluation_max_buyers=0), db)
    with TestClient(app, headers={"Authorization": f"Bearer {key}"}) as api:
        book(api)
        job = ok(api.put("/v1/policies/P", json=rate("0.80")), 202)
        assert "background revaluations 1," in cli("worker", "--once")
        assert ok(api.get(job["href"]))["state"] == "done"
        assert exposure(api, "F1")["indemnifiable"] == "49000.00"
    assert "matches" in cli("recompute", "--check")
    db.dispose()


def test_background_changes_ingest_and_a_runner_together_without_a_5xx(app, database, tenant, settings_override):
    """One lock order everywhere (the queued job, then rows by id, then the tenant row; a chunk: its buyers by
    id, their rows, the tenant row): changes answered 202, ingest and a runner at once never deadlock, and the
    end is what a recomputation gives."""
    import threading
    import time

    from fastapi.testclient import TestClient

    api = tenant.client
    refs = [f"B{i}" for i in range(8)]
    domain_policies(api)
    for ref in refs:
        buyer(api, ref, "FR" if int(ref[1:]) % 2 else "DE")
        limit(api, "50000.00", "2026-01-01", buyer_ref=ref)
    settings_override(inline_revaluation_max_buyers=0)
    statuses: dict[str, list[int]] = {"changes": [], "ingest": [], "payments": []}
    rounds = 8
    start = threading.Barrier(4)
    writing = threading.Event()
    writing.set()

    def changes(client) -> None:
        start.wait()
        for n in range(rounds):
            for path, body in (
                ("/v1/policies/P", rate("0.85" if n % 2 else "0.80")),
                # Every policy and settings change moves something (the policy starts at 0.90, the threshold at
                # 0.90): 2 x rounds answers 202 whatever the timing; an FX change only once USD invoices exist.
                ("/v1/settings", {"utilisation_threshold": "0.9" if n % 2 else "0.8"}),
                ("/v1/fx-rates", {"rates": [{"date": "2026-03-20", "base": "EUR", "quote": "USD",
                                             "rate": "1.3" if n % 2 else "1.2"}]}),
            ):
                statuses["changes"].append(client.put(path, json=body).status_code)

    def ingest(client) -> None:
        start.wait()
        for n in range(rounds):
            items = [{"invoice_ref": f"F{n}-{ref}", "buyer_ref": ref, "currency": "USD" if n % 2 else "EUR",
                      "amount": "1000.00", "issue_date": "2026-03-01", "due_date": "2026-04-30"}
                     for ref in reversed(refs)]
            statuses["ingest"].append(client.post("/v1/invoices/batch", json={"items": items}).status_code)

    def payments(client) -> None:
        start.wait()
        for n in range(rounds):
            items = [{"payment_ref": f"P{n}-{ref}", "buyer_ref": ref, "currency": "EUR", "amount": "100.00",
                      "received_on": "2026-03-10"} for ref in (refs[::-1] if n % 2 else refs)]
            statuses["payments"].append(client.post("/v1/payments/batch", json={"items": items}).status_code)

    outcomes: list = []

    def runner() -> None:
        start.wait()
        while writing.is_set():
            outcomes.extend(run(app, database, tenant, chunk=3))
            time.sleep(0.01)

    own = [TestClient(app, headers=dict(api.headers), raise_server_exceptions=False) for _ in range(3)]
    writers = [threading.Thread(target=fn, args=(c,)) for fn, c in zip((changes, ingest, payments), own, strict=True)]
    background = threading.Thread(target=runner)
    for t in [*writers, background]:
        t.start()
    for t in writers:
        t.join()
    writing.clear()
    background.join()
    for c in own:
        c.close()
    assert statuses["ingest"] == statuses["payments"] == [200] * rounds
    assert set(statuses["changes"]) <= {200, 202} and statuses["changes"].count(202) >= 2 * rounds
    outcomes.extend(run(app, database, tenant, chunk=3))
    assert outcomes and {o.state for o in outcomes} == {"done"}
    clean(app, database, tenant)


COUNTRIES = ["FR", "DE", "IT", "ES", "US"]
some = st.lists(st.sampled_from(COUNTRIES), max_size=3, unique=True)
endorsement = st.one_of(
    st.tuples(st.just("P"), some, some, st.dictionaries(st.sampled_from(COUNTRIES), st.sampled_from([30, 60, 90]),
                                                          max_size=2), st.integers(1, 80)),
    st.tuples(st.just("T"), some, st.integers(1, 80)),
)


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(endorsement, min_size=1, max_size=6))
def test_territory_endorsements_in_any_order_leave_no_buyer_behind(app, database, endorsements):
    """Versions before, between and after each other: the buyers an endorsement leaves alone are those whose
    figures a recomputation leaves alone."""
    from fastapi.testclient import TestClient

    from app.tenants.service import create_tenant
    from tests.conftest import Tenant

    with database.session() as session, session.begin():
        tenant, key = create_tenant(session, "territories", "EUR")
    api = TestClient(app, headers={"Authorization": f"Bearer {key}"}, raise_server_exceptions=False)
    domain_policies(api)
    for n, country in enumerate(COUNTRIES):
        ref = f"B-{country}"
        buyer(api, ref, country)
        limit(api, "50000.00", "2026-01-01", buyer_ref=ref)
        for k, issued in enumerate(("2026-01-20", "2026-02-15", "2026-03-10")):
            invoice(api, f"I-{country}-{k}", f"{30000 + n * 1000}.00", issued, "2026-04-20", buyer_ref=ref)
    for e in endorsements:
        day = (date(2026, 1, 1) + timedelta(days=e[-1])).isoformat()
        if e[0] == "P":
            _, covered, excluded, rules, _ = e
            body = PRIMARY | {"covered_countries": covered, "excluded_countries": excluded, "effective_from": day,
                              "country_overrides": {c: {"max_credit_period_days": d} for c, d in rules.items()}}
            ok(api.put("/v1/policies/P", json=body))
        else:
            ok(api.put("/v1/policies/T", json=TOP_UP | {"countries": e[1], "effective_from": day}))
        clean(app, database, Tenant(tenant.id, key, api))
    api.close()


def test_a_second_runner_helps_a_running_revaluation_and_each_buyer_is_revalued_once(
        app, database, make_tenant, settings_override, monkeypatch):
    """Workers share one tenant's revaluation (PostgreSQL): a runner that finds the job taken revalues the stale
    buyers with the highest ids, never waiting for a lock; the job's runner goes on from its cursor, skips what the
    helper revalued and finishes with `done` counting each buyer once. A helper that fails leaves its buyers
    stale, and the job's runner revalues them."""
    if database.dialect != "postgresql":
        pytest.skip("SQLite has one writer at a time: nothing to share")
    config = app.state.settings
    tenant = make_tenant()
    api = tenant.client
    book(api, [(f"B{n}", "FR", "EUR") for n in range(9)])
    settings_override(inline_revaluation_max_buyers=0)
    job = ok(api.put("/v1/policies/P", json=rate("0.85")), 202)
    [outcome] = run(app, database, tenant, chunk=2, max_chunks=1)  # the job's runner: B0, B1
    assert outcome.state == "running"
    with database.session(tenant.id) as session:
        runner = session.get(Revaluation, job["id"]).runner

    def failing(*args, **kwargs):
        raise RuntimeError("a helper dies mid-chunk")

    with monkeypatch.context() as patch:
        patch.setattr(service, "refresh_buyers", failing)  # the helper's chunk fails: its buyers stay marked
        assert revaluation.help_running(database, config, [tenant.id], chunk=2) == 0
    assert sum(stale for stale, _, _ in rows(database, tenant).values()) == 7
    assert revaluation.help_running(database, config, [tenant.id], chunk=3) == 7  # B8 down to B2
    assert sum(stale for stale, _, _ in rows(database, tenant).values()) == 0
    assert revaluation.run(database, config, job["id"], tenant.id, runner, chunk=2) == "done"
    done = ok(api.get(job["href"]))
    assert (done["state"], done["done"], done["total"]) == ("done", 9, 9)
    assert exposure(api, "B8")["indemnifiable"] == "58700.00"  # 50,000 x 0.85 + 18,000 x 0.90 (the Top Up)
    clean(app, database, tenant)


def test_two_workers_share_one_large_revaluation_without_a_5xx_or_a_lost_buyer(
        app, database, make_tenant, settings_override):
    """Two runners at once on one tenant's job (PostgreSQL): one owns it, the other helps; every buyer ends
    revalued and counted once."""
    import threading

    if database.dialect != "postgresql":
        pytest.skip("SQLite has one writer at a time: nothing to share")
    tenant = make_tenant()
    book(tenant.client, [(f"W{n}", "FR", "EUR") for n in range(24)])
    settings_override(inline_revaluation_max_buyers=0)
    job = ok(tenant.client.put("/v1/policies/P", json=rate("0.85")), 202)
    start = threading.Barrier(2)
    outcomes: list = []

    def worker() -> None:
        start.wait()
        outcomes.extend(run(app, database, tenant, chunk=2))

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert [(o.id, o.state) for o in outcomes] == [(job["id"], "done")]
    done = ok(tenant.client.get(job["href"]))
    assert (done["state"], done["done"], done["total"]) == ("done", 24, 24)
    clean(app, database, tenant)
