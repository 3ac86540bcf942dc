"""`insert_rows` writes rows as an INSERT would, whichever way it sends them (COPY on PostgreSQL from 200 rows, one
executemany otherwise): the columns' Python-side defaults are applied (a stop of cover's `recorded_at` and
`invoice_refs`). A refresh storing 200 stop periods at once failed with a NOT NULL violation before."""

from __future__ import annotations

from datetime import date, timedelta

from sqlalchemy import select

from app.core.db import COPY_FROM_ROWS, insert_rows
from app.cover.models import Policy, StopOfCover
from app.ledger.models import Buyer
from tests.helpers import PRIMARY, buyer, ok


def test_insert_rows_applies_the_columns_defaults_on_every_path(database, tenant):
    ok(tenant.client.put("/v1/policies/P", json=PRIMARY))
    buyer(tenant.client, "B1")
    with database.session(tenant.id) as session, session.begin():
        buyer_id = session.scalar(select(Buyer.id))
        policy_id = session.scalar(select(Policy.id))
        for year, count in ((2020, 5), (2021, COPY_FROM_ROWS + 50)):  # executemany, then COPY on PostgreSQL
            insert_rows(session, StopOfCover, [
                {"tenant_id": tenant.id, "buyer_id": buyer_id, "policy_id": policy_id,
                 "starts_on": date(year, 1, 1) + timedelta(days=k), "ends_on": None} for k in range(count)])
    with database.session(tenant.id) as session:
        stored = session.scalars(select(StopOfCover)).all()
    assert len(stored) == 5 + COPY_FROM_ROWS + 50
    assert all(s.recorded_at is not None and s.invoice_refs == [] for s in stored)


def test_exposure_rows_written_together_are_what_a_recompute_gives(database, tenant, app):
    """Many buyers without a stored row (a recompute after a bulk load of buyers) get theirs in one write: COPY on
    PostgreSQL from COPY_FROM_ROWS rows, in binary, every column sent as its own type (amounts, dates, JSON)."""
    from sqlalchemy import delete

    from app.core.context import system_context
    from app.exposure import service as exposure_service
    from app.exposure.models import BuyerExposure
    from app.tenants.models import Tenant

    ok(tenant.client.put("/v1/policies/P", json=PRIMARY))
    with database.session(tenant.id) as session, session.begin():
        session.add_all(Buyer(ref=f"BULK-{n:04d}", name=f"Buyer {n}", country="FR")
                        for n in range(COPY_FROM_ROWS + 20))
    with database.session(tenant.id) as session, session.begin():
        session.execute(delete(BuyerExposure))
        ctx = system_context(session, session.get(Tenant, tenant.id), app.state.settings)
        assert exposure_service.refresh_all(ctx) == COPY_FROM_ROWS + 20
    with database.session(tenant.id) as session:
        ctx = system_context(session, session.get(Tenant, tenant.id), app.state.settings)
        assert exposure_service.check(ctx) == []
        assert len(session.scalars(select(BuyerExposure)).all()) == COPY_FROM_ROWS + 20


def test_update_rows_writes_exact_values_in_the_sessions_tenant_only(database, make_tenant, app):
    """`update_rows` sets what each row says, whichever way it sends them (one UPDATE ... FROM a JSON array of rows
    on PostgreSQL from UPDATE_FROM_ROWS rows, an executemany by id and tenant otherwise): amounts exact, dates, JSON,
    the `onupdate` timestamp; a row of another tenant named among them is left alone."""
    from decimal import Decimal

    from app.core.context import system_context
    from app.core.db import UPDATE_FROM_ROWS, update_rows
    from app.exposure import service as exposure_service
    from app.exposure.models import BuyerExposure
    from app.tenants.models import Tenant

    mine, other = make_tenant(), make_tenant()
    for t, count in ((mine, UPDATE_FROM_ROWS + 5), (other, 1)):
        ok(t.client.put("/v1/policies/P", json=PRIMARY))
        with database.session(t.id) as session, session.begin():
            session.add_all(Buyer(ref=f"UPD-{n:04d}", name=f"Buyer {n}", country="FR") for n in range(count))
        with database.session(t.id) as session, session.begin():
            exposure_service.refresh_all(system_context(session, session.get(Tenant, t.id), app.state.settings))
    with database.session(other.id) as session:
        theirs = session.scalars(select(BuyerExposure)).one()
        their_limit, their_detail = theirs.primary_limit, theirs.detail
    with database.session(mine.id) as session:
        before = {e.id: e.updated_at for e in session.scalars(select(BuyerExposure))}
    ids = sorted(before)
    for k, part in enumerate((ids[:3], ids[3:])):  # an executemany, then (PostgreSQL) one statement
        rows = [{"id": i, "primary_limit": Decimal("12345678901234.56") + n, "utilisation": Decimal("1.2345"),
                 "valued_on": date(2026, 5, 31), "detail": {"limits": [{"amount": "10.00"}], "n": n}, "errors": []}
                for n, i in enumerate(part)]
        if k == 1:
            rows.append({**rows[0], "id": theirs.id})  # another tenant's row: not this session's to change
        with database.session(mine.id) as session, session.begin():
            update_rows(session, BuyerExposure, rows)
    with database.session(mine.id) as session:
        stored = {e.id: e for e in session.scalars(select(BuyerExposure))}
    for part in (ids[:3], ids[3:]):
        for n, i in enumerate(part):
            e = stored[i]
            assert (e.primary_limit, e.utilisation, e.valued_on) == (
                Decimal("12345678901234.56") + n, Decimal("1.2345"), date(2026, 5, 31))
            assert e.detail == {"limits": [{"amount": "10.00"}], "n": n}
            assert e.updated_at > before[i]
    with database.session(other.id) as session:
        theirs = session.scalars(select(BuyerExposure)).one()
        assert (theirs.primary_limit, theirs.detail) == (their_limit, their_detail)


def _alert_rows(tenant_id: str, n: int, tag: str) -> list[dict]:
    return [{"tenant_id": tenant_id, "type": "test", "subject": f"{tag}-{k}", "state": "open", "buyer_id": None,
             "buyer_ref": None, "country": None, "invoice_ref": None, "details": {"k": k},
             "opened_on": date(2026, 1, 1)} for k in range(n)]


def test_new_rows_get_the_ids_they_are_stored_under_in_one_statement_text(database, make_tenant):
    """`insert_new_rows` gives each row its id: the row stored under it says what the row said, whichever tenant
    wrote before. On SQLite the rows go in one executemany of one statement whatever their number (a statement text
    per number of rows kept each prepared in the connection's cache: 50 MB of a web worker)."""
    from sqlalchemy import event

    from app.alerts.models import Alert
    from app.core.db import insert_new_rows

    texts: set[str] = set()

    def capture(conn, cursor, statement, parameters, context, executemany):  # type: ignore[no-untyped-def]
        if statement.startswith("INSERT INTO alerts"):
            texts.add(statement)

    given: list[dict] = []
    event.listen(database.engine, "before_cursor_execute", capture)
    try:
        for n, tenant in zip((3, 7, COPY_FROM_ROWS + 5), (make_tenant("A"), make_tenant("B"), make_tenant("A")),
                             strict=True):
            rows = _alert_rows(tenant.id, n, f"{tenant.id}-{n}")
            with database.session(tenant.id) as session, session.begin():
                insert_new_rows(session, Alert, rows)
            given += rows
    finally:
        event.remove(database.engine, "before_cursor_execute", capture)
    assert len({r["id"] for r in given}) == len(given)
    with database.session() as session:
        stored = {a.id: a for a in session.scalars(select(Alert).where(Alert.type == "test"))}
    assert {(r["id"], r["tenant_id"], r["subject"], r["details"]["k"]) for r in given} <= {
        (a.id, a.tenant_id, a.subject, a.details["k"]) for a in stored.values()}
    if database.dialect == "sqlite":
        assert len(texts) == 1, texts


def test_per_buyer_lookups_come_in_a_few_statement_texts_and_find_what_one_query_finds(database, tenant):
    """`per_buyer_from_day` (SQLite's per-buyer range lookups): each statement has a power of two of parts, or
    PARTS, whatever the number of buyers, and together they find each buyer's rows from its own day on."""
    from app.core.db import PARTS, per_buyer_from_day
    from app.ledger.models import Invoice
    from tests.helpers import invoice

    ok(tenant.client.put("/v1/policies/P", json=PRIMARY))
    for b in ("B1", "B2", "B3"):
        buyer(tenant.client, b)
        for day in (5, 15, 25):
            invoice(tenant.client, f"{b}-{day}", "100.00", f"2026-01-{day:02d}", "2026-03-01", buyer_ref=b)
    with database.session(tenant.id) as session:
        ids = {ref: id_ for ref, id_ in session.execute(select(Buyer.ref, Buyer.id))}
        since = {ids["B1"]: date(2026, 1, 1), ids["B2"]: date(2026, 1, 10), ids["B3"]: date(2026, 1, 20)}
        stmt = select(Invoice.ref).where(Invoice.kind == "invoice")
        found = sorted(r for part in per_buyer_from_day(stmt, Invoice.buyer_id, Invoice.issue_date, since)
                       for r in session.scalars(part))
    assert found == ["B1-15", "B1-25", "B1-5", "B2-15", "B2-25", "B3-25"]
    allowed = {1 << k for k in range(8)} | {PARTS}
    for n in (1, 3, 5, 64, PARTS - 1, PARTS, PARTS + 1, 3 * PARTS + 7):
        many = {10_000_000 + k: date(2026, 1, 1) for k in range(n)}
        counts = [len(getattr(s, "selects", [s])) for s in
                  per_buyer_from_day(select(Invoice.ref), Invoice.buyer_id, Invoice.issue_date, many)]
        assert set(counts) <= allowed and sum(counts) >= n, (n, counts)
