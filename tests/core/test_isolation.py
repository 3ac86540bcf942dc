"""Tenant isolation on every endpoint: another tenant's object is a 404, never a 403."""

from tests.helpers import buyer, invoice, ok, payment


def _seed(client):
    buyer(client, "SHARED")
    invoice(client, "INV-A", "1000.00", "2026-02-01", "2026-03-01", buyer_ref="SHARED")
    payment(client, "PAY-A", "100.00", buyer_ref="SHARED")


def test_other_tenants_objects_are_invisible(make_tenant):
    a, b = make_tenant("A"), make_tenant("B")
    _seed(a.client)
    c = b.client
    for path in ("/v1/buyers/SHARED", "/v1/invoices/INV-A", "/v1/payments/PAY-A"):
        r = c.get(path)
        assert r.status_code == 404, path
        assert r.headers["content-type"] == "application/problem+json"
    assert c.delete("/v1/payments/PAY-A").status_code == 404
    assert ok(c.get("/v1/buyers"))["items"] == []
    assert ok(c.get("/v1/invoices"))["items"] == []
    assert c.get("/v1/invoices", params={"buyer_ref": "SHARED"}).status_code == 404
    # Writing against the other tenant's buyer or invoice: unknown here.
    body = {"buyer_ref": "SHARED", "currency": "EUR", "amount": "5.00", "issue_date": "2026-01-01",
            "due_date": "2026-01-31"}
    r = c.put("/v1/invoices/INV-B", json=body)
    assert r.status_code == 422 and r.json()["errors"][0]["pointer"] == "/buyer_ref"
    buyer(c, "MINE")
    r = c.put("/v1/payments/PAY-B", json={"buyer_ref": "MINE", "amount": "10.00", "currency": "EUR",
                                          "received_on": "2026-03-01",
                                          "allocations": [{"invoice_ref": "INV-A", "amount": "10.00"}]})
    assert r.status_code == 422 and r.json()["errors"][0]["pointer"] == "/allocations/0/invoice_ref"


def test_same_refs_in_two_tenants_stay_apart(make_tenant):
    a, b = make_tenant("A"), make_tenant("B")
    _seed(a.client)
    _seed(b.client)
    ok(b.client.delete("/v1/payments/PAY-A"))
    assert ok(a.client.get("/v1/invoices/INV-A"))["open_balance"] == "900.00"
    assert ok(b.client.get("/v1/invoices/INV-A"))["open_balance"] == "1000.00"
    assert len(ok(a.client.get("/v1/invoices"))["items"]) == 1
