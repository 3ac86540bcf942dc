from tests.helpers import buyer, ok

ITEM = {"invoice_ref": "I1", "buyer_ref": "B1", "currency": "EUR", "amount": "10.00",
        "issue_date": "2026-01-01", "due_date": "2026-02-01"}


def test_replay_returns_the_first_response(api):
    buyer(api, "B1")
    first = api.post("/v1/invoices/batch", json={"items": [ITEM]}, headers={"Idempotency-Key": "abc"})
    assert ok(first)["created"] == 1
    # Change the invoice behind the key's back: a replay still answers what the first call answered.
    ok(api.put("/v1/invoices/I1", json={k: v for k, v in ITEM.items() if k != "invoice_ref"} | {"amount": "12.00"}))
    again = api.post("/v1/invoices/batch", json={"items": [ITEM]}, headers={"Idempotency-Key": "abc"})
    assert again.status_code == 200
    assert again.json() == first.json()
    assert again.headers["idempotent-replayed"] == "true"
    assert ok(api.get("/v1/invoices/I1"))["amount"] == "12.00"


def test_same_key_other_body_is_422(api):
    buyer(api, "B1")
    ok(api.post("/v1/invoices/batch", json={"items": [ITEM]}, headers={"Idempotency-Key": "abc"}))
    r = api.post("/v1/invoices/batch", json={"items": [ITEM | {"amount": "11.00"}]}, headers={"Idempotency-Key": "abc"})
    assert r.status_code == 422
    assert "Idempotency-Key" in r.json()["detail"]
    assert ok(api.get("/v1/invoices/I1"))["amount"] == "10.00"


def test_keys_are_per_tenant(make_tenant):
    a, b = make_tenant(), make_tenant()
    for t in (a, b):
        buyer(t.client, "B1")
    ok(a.client.post("/v1/invoices/batch", json={"items": [ITEM]}, headers={"Idempotency-Key": "same"}))
    r = b.client.post("/v1/invoices/batch", json={"items": [ITEM | {"amount": "99.00"}]},
                      headers={"Idempotency-Key": "same"})
    assert ok(r)["created"] == 1
    assert "idempotent-replayed" not in r.headers
