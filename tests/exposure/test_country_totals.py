"""Country and portfolio totals are kept by delta, under a lock per country.

Two ingests in one country used to decide the country alert each on a sum that missed the other's uncommitted
rows: each alone stayed under the limit, together they went over it, and no alert opened.
"""

from __future__ import annotations

import threading
import time

import pytest
from sqlalchemy import select

from app.alerts.models import Alert
from app.core.context import system_context
from app.exposure import service as exposure
from app.ledger.service import ingest_invoices
from app.tenants.models import Tenant
from tests.helpers import buyer, domain_policies, limit, ok


def _invoice(ref: str, buyer_ref: str, amount: str) -> dict:
    return {"invoice_ref": ref, "buyer_ref": buyer_ref, "currency": "EUR", "amount": amount,
            "issue_date": "2026-03-01", "due_date": "2026-04-30"}


def test_totals_follow_every_change_and_match_the_rows(api, tenant, database, app):
    domain_policies(api)
    for ref, country in (("B1", "FR"), ("B2", "FR"), ("B3", "DE")):
        buyer(api, ref, country=country)
        limit(api, "50000.00", "2026-01-01", buyer_ref=ref)
    ok(api.post("/v1/invoices/batch", json={"items": [
        _invoice("I1", "B1", "1000.00"), _invoice("I2", "B2", "120000.00"), _invoice("I3", "B3", "500.00")]}))
    fr = next(c for c in ok(api.get("/v1/exposure/countries")) if c["country"] == "FR")
    assert (fr["buyers"], fr["outstanding"], fr["uncovered"]) == (2, "121000.00", "20000.00")
    portfolio = ok(api.get("/v1/exposure"))
    assert portfolio["outstanding"] == "121500.00" and portfolio["buyers_by_status"]["above_cover"] == 1
    buyer(api, "B2", country="DE")  # a buyer that moves takes its exposure to the other country
    countries = {c["country"]: c for c in ok(api.get("/v1/exposure/countries"))}
    assert (countries["FR"]["outstanding"], countries["DE"]["outstanding"]) == ("1000.00", "120500.00")
    with database.session(tenant.id) as session, session.begin():
        ctx = system_context(session, session.get(Tenant, tenant.id), app.state.settings)
        assert exposure.check(ctx) == []


def test_two_ingests_in_one_country_never_miss_the_country_limit(make_tenant, database, database_url, app):
    if not database_url.startswith("postgresql"):
        pytest.skip("SQLite has one writer at a time: its transactions never overlap")
    tenant = make_tenant()
    api = tenant.client
    domain_policies(api)
    for ref in ("B1", "B2"):
        buyer(api, ref)
        limit(api, "50000.00", "2026-01-01", buyer_ref=ref)
    # B2 is above its primary limit already: the two ingests below change the totals of two different statuses
    # (no row in common), so only the country's lock can make the second wait for the first.
    ok(api.post("/v1/invoices/batch", json={"items": [_invoice("I0", "B2", "55000.00")]}))
    ok(api.put("/v1/country-limits/FR", json={"amount": "65000.00", "currency": "EUR"}))
    settings = app.state.settings
    first_done = threading.Event()
    errors: list[BaseException] = []

    def second() -> None:
        try:
            first_done.wait()
            with database.session(tenant.id) as session, session.begin():
                ctx = system_context(session, session.get(Tenant, tenant.id), settings)
                ingest_invoices(ctx, [_invoice("I2", "B2", "5000.00")])  # waits for the first's commit
        except BaseException as exc:  # reported below
            errors.append(exc)

    thread = threading.Thread(target=second)
    thread.start()
    with database.session(tenant.id) as session, session.begin():
        ctx = system_context(session, session.get(Tenant, tenant.id), settings)
        ingest_invoices(ctx, [_invoice("I1", "B1", "10000.00")])  # 65,000 without the other: not above
        first_done.set()
        time.sleep(0.5)  # the second ingest has written its rows and now waits for this country's lock
    thread.join(30)
    assert not errors and not thread.is_alive()
    with database.session(tenant.id) as session:
        alerts = list(session.scalars(select(Alert).where(Alert.type == "country_above_limit")))
    assert [(a.subject, a.state) for a in alerts] == [("FR", "open")]
