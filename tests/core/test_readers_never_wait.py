"""Readers never wait on writers: a dashboard answers while a long write transaction is open.

On SQLite (WAL mode) only writing transactions take the write lock (`BEGIN IMMEDIATE`); a GET's session
begins deferred and reads its snapshot. Before, every transaction took the write lock, so a dashboard poll
during a batch waited the busy timeout (10 s), then got a 503.
"""

from __future__ import annotations

import time

from sqlalchemy import text

from tests.helpers import buyer, domain_policies, invoice, limit, ok


def test_a_dashboard_read_answers_at_once_while_a_write_transaction_is_open(api, database, tenant):
    domain_policies(api)
    buyer(api, "B1")
    limit(api, "100000.00", "2026-01-01")
    invoice(api, "F1", "80000.00", "2026-02-10", "2026-04-11")
    before = ok(api.get("/v1/exposure/buyers/B1"))

    with database.session() as writer, writer.begin():
        # A long write in progress: on SQLite this transaction holds the database's write lock.
        writer.execute(text("UPDATE buyers SET name = 'being rewritten' WHERE tenant_id = :t"), {"t": tenant.id})
        start = time.monotonic()
        reads = [api.get("/v1/exposure"), api.get("/v1/exposure/buyers/B1"), api.get("/v1/exposure/countries"),
                 api.get("/v1/buyers/B1")]
        elapsed = time.monotonic() - start
        assert [r.status_code for r in reads] == [200, 200, 200, 200], [r.text for r in reads]
        # The readers see the last committed state, not the write in progress.
        assert reads[1].json()["outstanding"] == before["outstanding"] == "80000.00"
        assert reads[3].json()["name"] == "Buyer B1"
        # Far below the 10 s busy timeout a reader used to wait before its 503.
        assert elapsed < 5, elapsed
    assert ok(api.get("/v1/buyers/B1"))["name"] == "being rewritten"


def test_writes_stay_serialised_while_reads_go_on(api, database, tenant):
    buyer(api, "B1")
    with database.session() as writer, writer.begin():
        writer.execute(text("UPDATE buyers SET name = 'held' WHERE tenant_id = :t"), {"t": tenant.id})
        assert api.get("/v1/buyers").status_code == 200
    # After the writer commits, a write request goes through and sees the committed row.
    ok(api.put("/v1/buyers/B1", json={"name": "Renamed", "country": "FR"}))
    assert ok(api.get("/v1/buyers/B1"))["name"] == "Renamed"
