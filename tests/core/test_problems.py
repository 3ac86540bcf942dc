"""Bad input: a 4xx problem+json naming the field, never a 500, nothing written."""

import pytest

from tests.helpers import buyer, ok

GOOD = {"buyer_ref": "B1", "currency": "EUR", "amount": "100.00", "issue_date": "2026-01-10",
        "due_date": "2026-03-10"}


@pytest.mark.parametrize(
    ("change", "pointer", "words"),
    [
        ({"issue_date": "2026-02-30"}, "/issue_date", "calendar date"),
        ({"due_date": "10/03/2026"}, "/due_date", "YYYY-MM-DD"),
        ({"due_date": "2026-01-01"}, "/due_date", "on or after issue_date"),
        ({"currency": "EURO"}, "/currency", "ISO 4217"),
        ({"currency": "XYZ"}, "/currency", "ISO 4217"),
        ({"amount": 100.1}, "/amount", "decimal string"),
        ({"amount": "100.123"}, "/amount", "more decimals than EUR"),
        ({"currency": "JPY", "amount": "100.5"}, "/amount", "more decimals than JPY"),
        ({"amount": "-5.00"}, "/amount", "greater than 0"),
        ({"amount": "0"}, "/amount", "greater than 0"),
        ({"amount": "abc"}, "/amount", "decimal string"),
        ({"kind": "debit_note"}, "/kind", ""),
        ({"colour": "red"}, "/colour", "Extra inputs"),
        ({"buyer_ref": "NOPE"}, "/buyer_ref", "no buyer"),
        ({"applies_to": "INV-0"}, "/applies_to", "only a credit note"),
    ],
)
def test_invoice_problems(api, change, pointer, words):
    buyer(api, "B1")
    body = {**GOOD, **change}
    r = api.put("/v1/invoices/INV-X", json=body)
    assert r.status_code == 422, r.text
    assert r.headers["content-type"] == "application/problem+json"
    problem = r.json()
    assert problem["status"] == 422 and problem["type"].endswith("validation-error")
    assert problem["errors"][0]["pointer"] == pointer
    assert words in problem["detail"] or words in problem["errors"][0]["detail"]
    assert api.get("/v1/invoices/INV-X").status_code == 404


@pytest.mark.parametrize(
    ("body", "pointer"),
    [
        ({"name": "X", "country": "XX"}, "/country"),
        ({"name": "X", "country": "fr"}, "/country"),
        ({"name": "", "country": "FR"}, "/name"),
        ({"country": "FR"}, "/name"),
    ],
)
def test_buyer_problems(api, body, pointer):
    r = api.put("/v1/buyers/B1", json=body)
    assert r.status_code == 422
    assert r.json()["errors"][0]["pointer"] == pointer


def test_malformed_requests_are_4xx(api):
    r = api.put("/v1/buyers/B1", content=b"{not json", headers={"content-type": "application/json"})
    assert r.status_code == 400 and r.headers["content-type"] == "application/problem+json"
    r = api.put("/v1/buyers/B1", json=["a", "list"])
    assert r.status_code == 422
    assert api.put("/v1/buyers/%20leading%20space", json={"name": "X", "country": "FR"}).status_code == 422
    assert api.get("/v1/nowhere").status_code == 404
    assert api.get("/v1/nowhere").headers["content-type"] == "application/problem+json"
    assert api.patch("/v1/buyers/B1", json={}).status_code == 405
    r = api.get("/v1/buyers", params={"cursor": "garbage!!"})
    assert r.status_code == 422 and r.json()["errors"][0]["pointer"] == "/cursor"
    r = api.get("/v1/invoices", params={"due_before": "yesterday"})
    assert r.status_code == 422 and r.json()["errors"][0]["pointer"] == "/due_before"


def test_body_size_limit(app, api):
    limit = app.state.settings.max_body_bytes
    r = api.post("/v1/invoices/batch", content=b"x" * (limit + 1), headers={"content-type": "application/json"})
    assert r.status_code == 413
    assert r.headers["content-type"] == "application/problem+json"


def test_batch_over_the_item_limit_is_413(api):
    buyer(api, "B1")
    items = [{**GOOD, "invoice_ref": f"I{i}"} for i in range(5001)]
    r = api.post("/v1/invoices/batch", json={"items": items})
    assert r.status_code == 413
    assert "5000" in r.json()["detail"]
    assert ok(api.get("/v1/invoices"))["items"] == []
