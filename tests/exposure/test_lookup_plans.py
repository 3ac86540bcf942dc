"""A single-invoice write looks its allocations and its country's alerts up by index, not by reading the tenant's,
on SQLite with the statistics a real ledger gives it: at 1,000,000 invoices those two tenant-wide reads made one
PUT take 170-190 ms instead of about 25."""

from __future__ import annotations

import re
from typing import Any

import pytest
from sqlalchemy import event, text

from app.alerts.models import Alert
from app.core.db import analyze
from app.ledger.models import Allocation
from tests.helpers import buyer, domain_policies, invoice, limit, payment


def _tenant_wide(detail: str, table: str) -> bool:
    """A plan step reading `table` whole, or through an index by the tenant alone (whichever index it is)."""
    m = re.match(r"(SCAN|SEARCH) (\w+)", detail)
    return m is not None and m.group(2) == table and (m.group(1) == "SCAN" or detail.endswith("(tenant_id=?)"))


def test_a_single_invoice_put_reads_allocations_and_country_alerts_by_index(api, tenant, database):
    """Allocations by invoice or credit note (most allocations are payments': their credit note is NULL), and the
    open country alerts of the buyer's country: both by an index, with the statistics of a tenant holding 20,000
    allocations of payments."""
    if database.dialect != "sqlite":
        pytest.skip("SQLite's planner: PostgreSQL's picks by its own statistics (autovacuum keeps them)")
    domain_policies(api)
    buyer(api, "B1", country="FR")
    limit(api, "1000.00", "2026-01-01")
    invoice(api, "I1", "400.00", "2026-02-01", "2026-03-01")
    payment(api, "P1", "100.00")
    with database.session(tenant.id) as session, session.begin():
        # 20,000 invoices paid in full, one allocation each from the payment: none of a credit note.
        b, p = session.execute(text("SELECT buyer_id, payment_id FROM allocations WHERE tenant_id = :t"),
                               {"t": tenant.id}).one()
        session.execute(text(
            "INSERT INTO invoices (tenant_id, ref, buyer_id, kind, currency, amount, issue_date, due_date,"
            " original_due_date, open_balance, settled_on, revision, created_at, updated_at) VALUES (:t, :ref, :b,"
            " 'invoice', 'EUR', 10000, '2026-01-05', '2026-02-05', '2026-02-05', 0, '2026-01-20', 1,"
            " '2026-01-05 00:00:00', '2026-01-05 00:00:00')"),
            [{"t": tenant.id, "ref": f"H{n}", "b": b} for n in range(20_000)])
        session.execute(text(
            "INSERT INTO allocations (tenant_id, buyer_id, invoice_id, payment_id, credit_note_id, amount, explicit,"
            " created_at) SELECT :t, buyer_id, id, :p, NULL, 10000, 0, '2026-01-20 00:00:00' FROM invoices"
            " WHERE tenant_id = :t AND ref LIKE 'H%'"), {"t": tenant.id, "p": p})
        analyze(session, Allocation, Alert)

    statements: list[tuple[str, Any]] = []

    def capture(conn, cursor, statement, parameters, context, executemany):  # type: ignore[no-untyped-def]
        if not executemany and re.search(r"FROM (allocations|alerts)\b", statement):
            statements.append((statement, parameters))

    event.listen(database.engine, "before_cursor_execute", capture)
    try:
        invoice(api, "I2", "300.00", "2026-02-10", "2026-03-10")
    finally:
        event.remove(database.engine, "before_cursor_execute", capture)

    looked_up = [(s, p) for s, p in statements if "FROM allocations" in s or "country_above_limit" in str(p)]
    assert any("FROM allocations" in s for s, _ in looked_up) and any("alerts" in s for s, _ in looked_up)
    with database.engine.connect() as conn:
        wide = [(re.sub(r"\s+", " ", statement)[-200:], detail) for statement, parameters in looked_up
                for *_, detail in conn.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, parameters).all()
                if _tenant_wide(detail, "allocations") or _tenant_wide(detail, "alerts")]
    assert not wide, wide
