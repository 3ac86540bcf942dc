"""Delivery reliability: nothing lost while a receiver is down, each webhook-id processed once by a
de-duplicating receiver, late results fenced off, and a total deadline on every send."""

from __future__ import annotations

import ipaddress
import time

import pytest
from pydantic import ValidationError

from app.core import public_ids
from app.core.config import Settings
from app.tenants.models import Tenant
from app.webhooks import dispatcher
from app.webhooks.dispatcher import SENDERS, Outcome, claim, record, record_many
from tests.helpers import buyer, invoice, ok
from tests.receiver import DripServer, Receiver


def _all_deliveries(api) -> list[dict]:
    items, cursor = [], None
    while True:
        page = ok(api.get("/v1/webhook-deliveries", params={"limit": 50} | ({"cursor": cursor} if cursor else {})))
        items += page["items"]
        if not (cursor := page["next_cursor"]):
            return items


def test_receiver_down_then_back_every_event_arrives_each_webhook_id_processed_once(api, tenant, dispatch,
                                                                                    settings_override):
    settings_override(webhook_retry_base_seconds=0.05, webhook_retry_max_seconds=0.2)
    dropped: set[str] = set()

    def lose_first_ack_of_three(got) -> bool:  # processed, but the 2xx never reaches the sender
        if got.id not in dropped and len(dropped) < 3:
            dropped.add(got.id)
            return True
        return False

    receiver = Receiver(dedupe=True, drop_ack=lose_first_ack_of_three)
    try:
        secret = ok(api.post("/v1/webhook-endpoints", json={"url": receiver.url}), 201)["secret"]
        receiver.stop()  # down: connection refused
        for n in range(12):
            buyer(api, f"B{n}")
            invoice(api, f"I{n}", "10.00", "2026-02-01", "2026-03-01", buyer_ref=f"B{n}")  # no_cover: an event
        for _ in range(3):
            dispatch()
            time.sleep(0.25)
        pending = _all_deliveries(api)
        assert len(pending) == 12 and all(d["status"] == "pending" and d["attempts"] >= 2 for d in pending)
        assert all(d["last_error"].startswith("ConnectError") for d in pending)

        receiver.start()  # back, on the same port
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and any(d["status"] != "delivered" for d in _all_deliveries(api)):
            dispatch()
            time.sleep(0.1)
        deliveries = _all_deliveries(api)
        assert {d["status"] for d in deliveries} == {"delivered"}
        event_ids = {d["event_id"] for d in deliveries}
        assert len(event_ids) == 12
        # Every event arrived, and the consumer processed each webhook-id exactly once...
        assert set(receiver.processed) == event_ids
        # ...although three were sent again (their acknowledgement was lost): at least once, deduplicated.
        assert len(dropped) == 3 and receiver.duplicates == 3
        assert sorted(r.id for r in receiver.received) == sorted([*event_ids, *dropped])
        bodies = receiver.verified(secret)
        assert {b["tenant_id"] for b in bodies} == {tenant.id}
        assert sorted({b["data"]["buyer_ref"] for b in bodies}) == sorted(f"B{n}" for n in range(12))
    finally:
        receiver.close()


def test_a_sender_keeps_its_connection_to_a_receiver_open_for_the_next_deliveries(api, tenant, dispatch):
    """Deliveries to a receiver that keeps connections alive reuse them: a connection per sender, not per
    delivery; each delivery still signed for itself."""
    receiver = Receiver(keep_alive=True)
    try:
        secret = ok(api.post("/v1/webhook-endpoints", json={"url": receiver.url}), 201)["secret"]
        for n in range(25):
            buyer(api, f"B{n}")
            invoice(api, f"I{n}", "10.00", "2026-02-01", "2026-03-01", buyer_ref=f"B{n}")  # no_cover: an event
        dispatch()
        deliveries = _all_deliveries(api)
        assert len(deliveries) == 25 and {(d["status"], d["attempts"]) for d in deliveries} == {("delivered", 1)}
        assert len(receiver.verified(secret)) == 25
        assert receiver.connections <= SENDERS
    finally:
        receiver.close()


def test_a_kept_alive_connection_closed_by_the_receiver_is_replaced_within_the_attempt(api, tenant, dispatch,
                                                                                       monkeypatch):
    """The receiver takes the second delivery on a kept-alive connection and closes it without answering (it
    may have processed it): the sender sends it again at once on a new connection, in the same attempt; the
    receiver dedupes on webhook-id."""
    # One sender: with several, each may claim one of the two deliveries and none reuses a connection.
    monkeypatch.setattr(dispatcher, "SENDERS", 1)
    seen: list[str] = []

    def drop_the_second(got) -> bool:
        seen.append(got.id)
        return len(seen) == 2

    receiver = Receiver(keep_alive=True, dedupe=True, drop_ack=drop_the_second)
    try:
        ok(api.post("/v1/webhook-endpoints", json={"url": receiver.url}), 201)
        for n in range(2):
            buyer(api, f"B{n}")
            invoice(api, f"I{n}", "10.00", "2026-02-01", "2026-03-01", buyer_ref=f"B{n}")
        assert dispatch() == 2  # the sender sends both, one after the other
        deliveries = _all_deliveries(api)
        assert {(d["status"], d["attempts"]) for d in deliveries} == {("delivered", 1)}
        assert len(seen) == 3 and seen[1] == seen[2]  # the dropped one, sent again
        assert receiver.duplicates == 1 and len(receiver.processed) == 2
        assert receiver.connections == 2
    finally:
        receiver.close()


def _ping(api, receiver) -> str:
    created = ok(api.post("/v1/webhook-endpoints", json={"url": receiver.url}), 201)
    ok(api.post(f"/v1/webhook-endpoints/{created['id']}/test"), 202)
    return created["id"]


def test_a_late_result_never_overwrites_a_newer_attempt(app, api, tenant, database, receiver, settings_override):
    """A replica stalls after sending (GC pause, lost network): its lease expires, another replica sends
    again. Whatever the stalled one reports afterwards is logged as late and changes nothing."""
    settings_override(webhook_lease_seconds=1.0, webhook_timeout_seconds=0.5)
    settings = app.state.settings
    _ping(api, receiver)
    [first] = claim(database, settings, tenant_ids=[tenant.id])
    assert claim(database, settings, tenant_ids=[tenant.id]) == []  # leased
    time.sleep(1.1)  # the lease runs out
    [second] = claim(database, settings, tenant_ids=[tenant.id])
    assert (first.delivery_id, first.attempt, second.attempt) == (second.delivery_id, 1, 2)

    assert record(database, second, Outcome(503, 12, None), settings) is True
    assert record(database, first, Outcome(200, 900, None), settings) is False  # late success: ignored
    [delivery] = ok(api.get("/v1/webhook-deliveries"))["items"]
    assert (delivery["status"], delivery["attempts"], delivery["last_status_code"]) == ("pending", 2, 503)
    log = [(a["attempt"], a["status_code"], a["late"]) for a in delivery["attempt_log"]]
    assert log == [(2, 503, False), (1, 200, True)]

    # The other way round: the newer attempt delivered; a late failure neither un-delivers it nor marks the
    # endpoint failing.
    second_endpoint = _ping(api, receiver)
    [a] = claim(database, settings, tenant_ids=[tenant.id], limit=1)
    time.sleep(1.1)
    claimed = claim(database, settings, tenant_ids=[tenant.id])
    [b] = [c for c in claimed if c.delivery_id == a.delivery_id]
    assert record(database, b, Outcome(204, 10, None), settings) is True
    assert record(database, a, Outcome(None, 200, "ReadTimeout: timed out"), settings) is False
    latest = ok(api.get("/v1/webhook-deliveries"))["items"][0]
    with database.session() as session:  # the API shows the delivery's public id (app/core/public_ids.py)
        assert latest["id"] == public_ids.encode(session.get(Tenant, tenant.id), "webhook_deliveries", a.delivery_id)
    assert (latest["status"], latest["last_status_code"], latest["last_error"]) == ("delivered", 204, None)
    assert ok(api.get(f"/v1/webhook-endpoints/{second_endpoint}"))["failing_since"] is None


def test_results_recorded_together_keep_the_fence(app, api, tenant, database, receiver, settings_override):
    """A sender's results are recorded together (one locking read, one insert of the attempts, one update): each
    lands only while its delivery is still at its attempt, and a second result of a delivery in the same batch is
    late too."""
    settings_override(webhook_lease_seconds=1.0, webhook_timeout_seconds=0.5)
    settings = app.state.settings
    _ping(api, receiver)
    [first] = claim(database, settings, tenant_ids=[tenant.id])
    time.sleep(1.1)  # the lease runs out
    [second] = claim(database, settings, tenant_ids=[tenant.id])
    results = [(first, Outcome(200, 900, None)), (second, Outcome(204, 10, None)), (second, Outcome(503, 5, None))]
    assert record_many(database, results, settings) == [False, True, False]
    [delivery] = ok(api.get("/v1/webhook-deliveries"))["items"]
    assert (delivery["status"], delivery["attempts"], delivery["last_status_code"]) == ("delivered", 2, 204)
    log = sorted((a["attempt"], a["status_code"], a["late"]) for a in delivery["attempt_log"])
    assert log == [(1, 200, True), (2, 204, False), (2, 503, True)]


def test_a_send_has_a_total_deadline_below_its_lease(api, dispatch, settings_override):
    """A receiver answering one byte every 0.1 s never trips a per-read timeout; the whole exchange is cut at
    the deadline anyway (10 s of dripping otherwise)."""
    settings_override(webhook_timeout_seconds=1.0, webhook_lease_seconds=5.0)
    slow = DripServer(interval=0.1, seconds=10.0)
    try:
        _ping(api, slow)
        started = time.monotonic()
        assert dispatch() == 1
        elapsed = time.monotonic() - started
        assert slow.connections == 1
        assert elapsed < 4.5, elapsed  # far below the drip's 10 s, and below the 5 s lease
        [delivery] = ok(api.get("/v1/webhook-deliveries"))["items"]
        [attempt] = delivery["attempt_log"]
        assert delivery["status"] == "pending" and "Timeout" in attempt["error"]
        assert 900 <= attempt["latency_ms"] < 2500
    finally:
        slow.close()


def test_the_deadline_must_be_below_the_lease():
    with pytest.raises(ValidationError, match="below webhook_lease_seconds"):
        Settings(webhook_timeout_seconds=120, webhook_lease_seconds=120)
    assert Settings().webhook_timeout_seconds < Settings().webhook_lease_seconds


def test_the_deadline_covers_dns_resolution(api, receiver, database, dispatch, settings_override):
    from sqlalchemy import text

    settings_override(webhook_timeout_seconds=1.0, webhook_lease_seconds=3.0)
    endpoint = _ping(api, receiver)
    with database.engine.begin() as conn:
        conn.execute(text("UPDATE webhook_endpoints SET url = :url WHERE id = :id"),
                     {"url": f"http://slow-dns.invalid:{receiver.port}/hooks", "id": endpoint})

    def hanging_dns(host: str, port: int) -> list:
        time.sleep(6)
        return [ipaddress.ip_address("127.0.0.1")]

    started = time.monotonic()
    dispatch(resolver=hanging_dns)
    assert time.monotonic() - started < 4.0  # not the 6 s the resolver takes
    [delivery] = ok(api.get("/v1/webhook-deliveries"))["items"]
    assert delivery["last_error"].startswith("ResolveTimeout") and receiver.hits == 0
