"""Webhook endpoints and deliveries, against a real receiver on 127.0.0.1."""

import threading
import time

from standardwebhooks import Webhook

from tests.helpers import buyer, invoice, ok


def _endpoint(api, receiver, **extra):
    return ok(api.post("/v1/webhook-endpoints", json={"url": receiver.url} | extra), 201)


def test_endpoint_lifecycle_secret_shown_once_and_ping(api, receiver, dispatch):
    created = _endpoint(api, receiver, description="credit desk")
    secret = created["secret"]
    assert secret.startswith("whsec_") and len(secret) > 40
    listed = ok(api.get("/v1/webhook-endpoints"))["items"]
    assert [e["id"] for e in listed] == [created["id"]] and "secret" not in listed[0]
    assert "secret" not in ok(api.get(f"/v1/webhook-endpoints/{created['id']}"))

    queued = ok(api.post(f"/v1/webhook-endpoints/{created['id']}/test"), 202)
    assert queued["status"] == "pending" and queued["event_type"] == "ping"
    dispatch()
    [ping] = receiver.verified(secret)
    assert ping["type"] == "ping" and ping["data"]["endpoint_id"] == created["id"]
    [delivery] = ok(api.get("/v1/webhook-deliveries"))["items"]
    assert (delivery["status"], delivery["attempts"], delivery["last_status_code"]) == ("delivered", 1, 200)
    assert delivery["attempt_log"][0]["status_code"] == 200 and delivery["attempt_log"][0]["latency_ms"] >= 0

    rotated = ok(api.post(f"/v1/webhook-endpoints/{created['id']}/rotate-secret"))
    assert rotated["secret"] != secret
    ok(api.post(f"/v1/webhook-endpoints/{created['id']}/test"), 202)
    dispatch()
    last = receiver.received[-1]
    Webhook(rotated["secret"]).verify(last.body, last.headers)

    patched = ok(api.patch(f"/v1/webhook-endpoints/{created['id']}", json={"event_types": ["claim.filed"],
                                                                             "description": None}))
    assert patched["event_types"] == ["claim.filed"] and patched["description"] is None
    assert api.patch(f"/v1/webhook-endpoints/{created['id']}", json={"event_types": ["nope"]}).status_code == 422
    assert api.delete(f"/v1/webhook-endpoints/{created['id']}").status_code == 204
    assert api.get(f"/v1/webhook-endpoints/{created['id']}").status_code == 404


def test_event_filter(api, receiver, dispatch):
    only_claims = _endpoint(api, receiver, event_types=["claim.filed"])
    buyer(api, "B1")
    invoice(api, "I1", "10.00", "2026-02-01", "2026-03-01")  # raises no_cover
    dispatch()
    assert receiver.received == []
    assert ok(api.get("/v1/webhook-deliveries"))["items"] == []
    assert only_claims["event_types"] == ["claim.filed"]


def test_private_and_metadata_urls_are_refused(api, settings_override):
    settings_override(webhook_allowed_networks=())
    for url in ("http://127.0.0.1:9/x", "http://10.1.2.3/x", "http://169.254.169.254/latest/meta-data",
                "http://[::1]/x", "http://localhost/x", "ftp://example.com/x", "http://user:pw@127.0.0.1/x",
                "not a url"):
        r = api.post("/v1/webhook-endpoints", json={"url": url})
        assert r.status_code == 422, url
        assert r.json()["errors"][0]["pointer"] == "/url"
    assert ok(api.get("/v1/webhook-endpoints"))["items"] == []


def test_a_receiver_that_is_down_gets_every_event_when_it_comes_back(api, receiver, dispatch, settings_override):
    settings_override(webhook_retry_base_seconds=0.05, webhook_retry_max_seconds=0.2)
    secret = _endpoint(api, receiver)["secret"]
    receiver.status = 503
    buyer(api, "B1")
    buyer(api, "B2")
    invoice(api, "I1", "10.00", "2026-02-01", "2026-03-01", buyer_ref="B1")
    invoice(api, "I2", "10.00", "2026-02-01", "2026-03-01", buyer_ref="B2")
    for _ in range(3):
        dispatch()
        time.sleep(0.25)
    assert receiver.received == [] and receiver.hits >= 4
    pending = ok(api.get("/v1/webhook-deliveries", params={"status": "pending"}))["items"]
    assert len(pending) == 2 and all(d["attempts"] >= 2 and d["last_status_code"] == 503 for d in pending)
    assert ok(api.get("/v1/webhook-endpoints"))["items"][0]["failing_since"] is not None

    receiver.status = 204
    deadline = time.monotonic() + 20
    while len(receiver.received) < 2 and time.monotonic() < deadline:
        dispatch()
        time.sleep(0.1)
    events = receiver.verified(secret)
    assert sorted(e["data"]["buyer_ref"] for e in events) == ["B1", "B2"]
    ids = [r.id for r in receiver.received]
    assert len(set(ids)) == 2
    delivered = ok(api.get("/v1/webhook-deliveries", params={"status": "delivered"}))["items"]
    assert {d["event_id"] for d in delivered} == set(ids)  # the same webhook-id on every attempt
    assert all(503 in [a["status_code"] for a in d["attempt_log"]] for d in delivered)
    assert ok(api.get("/v1/webhook-endpoints"))["items"][0]["failing_since"] is None


def test_give_up_after_the_window_disable_the_endpoint_and_retry_by_hand(api, make_tenant, dispatch,
                                                                        settings_override):
    from tests.receiver import Receiver

    down, up = Receiver(status=500), Receiver()
    try:
        settings_override(webhook_retry_window_hours=0.0, webhook_disable_after_hours=0.0)
        bad = _endpoint(api, down)
        good_secret = _endpoint(api, up, event_types=["endpoint.disabled"])["secret"]
        buyer(api, "B1")
        invoice(api, "I1", "10.00", "2026-02-01", "2026-03-01")
        dispatch()
        failed = ok(api.get("/v1/webhook-deliveries", params={"endpoint_id": bad["id"]}))["items"]
        assert [d["status"] for d in failed] == ["failed"]
        endpoint = ok(api.get(f"/v1/webhook-endpoints/{bad['id']}"))
        assert endpoint["enabled"] is False and endpoint["disabled_reason"].startswith("failing since")
        dispatch()
        [disabled] = up.verified(good_secret)
        assert disabled["type"] == "endpoint.disabled" and disabled["data"]["endpoint_id"] == bad["id"]

        settings_override(webhook_retry_window_hours=24.0, webhook_disable_after_hours=72.0)
        down.status = 200
        ok(api.patch(f"/v1/webhook-endpoints/{bad['id']}", json={"enabled": True}))
        retried = ok(api.post(f"/v1/webhook-deliveries/{failed[0]['id']}/retry"))
        assert retried["status"] == "pending"
        dispatch()
        assert [r.json["type"] for r in down.received] == ["alert.opened"]
        other = make_tenant()
        assert other.client.post(f"/v1/webhook-deliveries/{failed[0]['id']}/retry").status_code == 404
    finally:
        down.close()
        up.close()


def test_a_slow_receiver_never_blocks_ingestion(api, receiver, dispatch):
    _endpoint(api, receiver)
    receiver.gate.clear()  # the receiver holds every request until released
    buyer(api, "B1")
    invoice(api, "I1", "10.00", "2026-02-01", "2026-03-01")
    worker = threading.Thread(target=dispatch, daemon=True)
    worker.start()
    assert receiver.wait_for(lambda r: r.hits == 0 and not r.gate.is_set(), timeout=5)
    # While a delivery hangs in the dispatcher, ERP writes go through.
    for n in range(5):
        assert api.put(f"/v1/invoices/J{n}", json={"buyer_ref": "B1", "currency": "EUR", "amount": "1.00",
                                                    "issue_date": "2026-02-01", "due_date": "2026-03-01"}
                       ).status_code == 201
    assert worker.is_alive()
    receiver.gate.set()
    worker.join(timeout=30)
    assert len(receiver.received) == 1


def test_a_receiver_shared_by_several_tenants_tells_them_apart(make_tenant, receiver, dispatch):
    """A broker points every insured's endpoint at one receiver: the envelope names the tenant."""
    tenants = [make_tenant("Acme SAS"), make_tenant("Globex GmbH")]
    secrets = {}
    for t in tenants:
        secrets[t.id] = ok(t.client.post("/v1/webhook-endpoints", json={"url": receiver.url}), 201)["secret"]
        buyer(t.client, "B1")
        invoice(t.client, "I1", "10.00", "2026-02-01", "2026-03-01")
    dispatch()
    assert len(receiver.received) == 2
    for got in receiver.received:
        tenant_id = got.json["tenant_id"]
        Webhook(secrets[tenant_id]).verify(got.body, got.headers)  # signed with that tenant's endpoint secret
    assert sorted(r.json["tenant_id"] for r in receiver.received) == sorted(t.id for t in tenants)


def test_no_event_is_written_where_no_endpoint_subscribes(api, tenant, database, receiver):
    """Events exist to be delivered: without a subscriber the outbox stays empty, with one only its types."""
    from sqlalchemy import select

    from app.webhooks.models import WebhookDelivery, WebhookEvent

    def outbox() -> list[str]:
        with database.session(tenant.id) as s:
            return sorted(s.scalars(select(WebhookEvent.type)))

    buyer(api, "B1")
    invoice(api, "I1", "10.00", "2026-02-01", "2026-03-01")  # no limit: a no_cover alert opens
    assert [a["type"] for a in ok(api.get("/v1/alerts"))["items"]] == ["no_cover"]
    assert outbox() == []
    _endpoint(api, receiver, event_types=["alert.resolved"])
    buyer(api, "B2")
    invoice(api, "I2", "10.00", "2026-02-01", "2026-03-01", buyer_ref="B2")  # a second no_cover: not subscribed
    assert len(ok(api.get("/v1/alerts"))["items"]) == 2
    assert outbox() == []
    ok(api.post("/v1/payments/batch", json={"items": [
        {"payment_ref": "P1", "buyer_ref": "B1", "currency": "EUR", "amount": "10.00", "received_on": "2026-02-10"}]}))
    assert outbox() == ["alert.resolved"]  # B1's no_cover cleared once paid
    with database.session(tenant.id) as s:
        [delivery] = s.scalars(select(WebhookDelivery)).all()
        assert delivery.status == "pending"
