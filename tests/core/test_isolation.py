"""Tenant isolation on every endpoint: another tenant's object is a 404, never a 403."""

import re
from urllib.parse import quote

import pytest

from tests.core.book import Book, seed_book
from tests.helpers import PRIMARY, buyer, invoice, ok, payment


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


# ------------------------------------------------------------------------------------------------------------------
# Every route, generated from the app's own OpenAPI document: a route added later is covered without being named.

OBJECT_PARAMS = {"buyer_ref", "invoice_ref", "credit_note_ref", "payment_ref", "policy_ref", "alert_id",
                 "delivery_id", "endpoint_id", "key_id", "revaluation_id"}
NOT_OBJECTS = {"kind", "country"}  # an enum of the API (report, export, import kinds), a country code


def _operations(app) -> list[tuple[str, str, dict]]:
    ops = [(method.upper(), path, op) for path, item in app.openapi()["paths"].items() if path.startswith("/v1/")
           for method, op in item.items()]
    for _, path, op in ops:
        for p in op.get("parameters", []):
            if p["in"] == "path":
                assert p["name"] in OBJECT_PARAMS | NOT_OBJECTS, f"{path}: classify path parameter {p['name']}"
    return ops


def _path_values(op: dict, name: str, book: Book) -> list[str]:
    if name in book.params:
        return [book.params[name]]
    if name == "country":
        return ["FR"]
    schema = next(p["schema"] for p in op["parameters"] if p["name"] == name)
    return list(schema["enum"])


def _urls(path: str, op: dict, book: Book) -> list[str]:
    names = re.findall(r"{(\w+)}", path)
    urls = [path]
    for name in names:
        urls = [u.replace(f"{{{name}}}", quote(v, safe="")) for u in urls for v in _path_values(op, name, book)]
    return urls


def _query(op: dict, book: Book) -> dict[str, str]:
    known = {"policy_ref": book.params["policy_ref"]}
    required = [p["name"] for p in op.get("parameters", []) if p["in"] == "query" and p.get("required")]
    assert set(required) <= set(known), f"give a value for the required query parameters {required}"
    return {name: known[name] for name in required}


def _object_params(path: str) -> set[str]:
    return set(re.findall(r"{(\w+)}", path)) & OBJECT_PARAMS


def _bodies(own: Book) -> dict[tuple[str, str], dict]:
    """Valid bodies, in the acting tenant's terms, for the writes that name an object in their path."""
    return {
        ("PUT", "/v1/buyers/{buyer_ref}"): {"name": "Taken over", "country": "FR"},
        ("PUT", "/v1/invoices/{invoice_ref}"): {"buyer_ref": own.params["buyer_ref"], "currency": "EUR",
                                                "amount": "1.00", "issue_date": "2026-03-01",
                                                "due_date": "2026-03-31"},
        ("PUT", "/v1/payments/{payment_ref}"): {"buyer_ref": own.params["buyer_ref"], "amount": "1.00",
                                                "currency": "EUR", "received_on": "2026-03-01"},
        ("PUT", "/v1/policies/{policy_ref}"): PRIMARY,
        ("POST", "/v1/policies/{policy_ref}/limits"): {"buyer_ref": own.params["buyer_ref"], "status": "granted",
                                                       "amount": "1.00", "effective_from": "2026-03-01"},
        ("PATCH", "/v1/webhook-endpoints/{endpoint_id}"): {"description": "taken over"},
        ("POST", "/v1/webhook-endpoints/{endpoint_id}/rotate-secret"): {},
        ("POST", "/v1/alerts/{alert_id}/acknowledge"): {"note": "taken over"},
        ("POST", "/v1/alerts/{alert_id}/resolve"): {"note": "taken over"},
    }


def _snapshot(client, ops, book: Book) -> dict[str, str]:
    """Every GET answer of the tenant: its objects by ref and by id, its lists, reports and exports."""
    seen = {}
    for method, path, op in ops:
        if method == "GET":
            for url in _urls(path, op, book):
                r = client.get(url, params=_query(op, book))
                assert r.status_code == 200, f"{url}: {r.status_code} {r.text}"
                seen[url] = r.text
    return seen


@pytest.fixture
def two_books(app, make_tenant):
    a, b = make_tenant("Alpha SAS"), make_tenant("Bravo SAS")
    return a, seed_book(a.client, "ALPHA"), b, seed_book(b.client, "BRAVO")


def test_every_route_answers_404_for_the_other_tenants_objects(app, two_books):
    """Tenant B, with its own admin key, addresses each of A's objects by ref and by id on every route that
    takes one: 404 problem (never 403, never A's data), and A's book is unchanged afterwards. A PUT is an upsert:
    it creates B's own object under that ref, and A's stays as it was."""
    a, book_a, b, book_b = two_books
    ops = _operations(app)
    before = _snapshot(a.client, ops, book_a)
    bodies = _bodies(book_b)
    tried = 0
    for method, path, op in sorted(ops, key=lambda o: o[0] == "PUT"):  # upserts last: they create B's own
        if not _object_params(path):
            continue
        body = bodies.get((method, path))
        assert body is not None or not op.get("requestBody", {}).get("required"), f"a body for {method} {path}"
        for url in _urls(path, op, book_a):
            r = b.client.request(method, url, json=body)
            tried += 1
            if method == "PUT":
                assert r.status_code in (200, 201), f"{method} {url}: {r.status_code} {r.text}"
                assert "ALPHA buyer" not in r.text
            else:
                assert r.status_code == 404, f"{method} {url}: {r.status_code} {r.text}"
                assert r.headers["content-type"] == "application/problem+json"
    assert tried >= 20
    assert _snapshot(a.client, ops, book_a) == before


def test_every_list_report_and_export_holds_only_the_tenants_own_rows(app, two_books):
    """Every GET that takes no object (lists, dashboards, reports, exports of every kind): B's answer names none
    of A's refs, none of A's ids, and every list has as many items as A's (the same book), so it is not empty
    by accident."""
    a, book_a, b, book_b = two_books
    lists = 0
    for method, path, op in _operations(app):
        if method != "GET" or _object_params(path):
            continue
        for url in _urls(path, op, book_b):
            mine = b.client.get(url, params=_query(op, book_b))
            theirs = a.client.get(url, params=_query(op, book_a))
            assert mine.status_code == theirs.status_code == 200, f"{url}: {mine.text}"
            assert "ALPHA" not in mine.text and book_a.read_key not in mine.text, url
            if mine.headers["content-type"].startswith("application/json") and isinstance(mine.json(), dict) \
                    and "items" in mine.json():
                lists += 1
                items, other = mine.json()["items"], theirs.json()["items"]
                assert len(items) == len(other), url
                assert not {i.get("id") for i in items} & book_a.ids.get(url, set()), url
    assert lists >= 12


def test_read_keys_cannot_write_anywhere(app, two_books):
    """A `read` key gets 403 on every operation that is not a GET (here on the tenant's own objects, so the
    answer is about the scope, not about a missing object)."""
    _, _, b, book_b = two_books
    writes = 0
    for method, path, op in _operations(app):
        if method == "GET":
            continue
        content = next(iter(op.get("requestBody", {}).get("content", {"application/json": {}})))
        for url in _urls(path, op, book_b):
            r = b.client.request(method, url, content=b"{}" if content == "application/json" else b"x",
                                 headers={"Authorization": f"Bearer {book_b.read_key}", "Content-Type": content})
            writes += 1
            assert r.status_code == 403, f"{method} {url}: {r.status_code} {r.text}"
            assert r.headers["content-type"] == "application/problem+json"
    assert writes >= 25
