"""Every list endpoint is paginated the same way, found from the app's OpenAPI document (a new list is covered
without being named): `limit`, `cursor`, `next_cursor`; an empty `cursor=` is the first page; page after page
gives every item once, in the order of one big page; a cursor the API did not write is a 422 naming `cursor`."""

import base64
import json
import re

import pytest

from tests.core.book import seed_book
from tests.helpers import ok

# Not lists of rows: a time series whose length is its `days` parameter, and one line per country (bounded).
SERIES = {"/v1/exposure/history", "/v1/exposure/countries"}


def _forge(values) -> str:
    return base64.urlsafe_b64encode(json.dumps(values).encode()).decode().rstrip("=")


def _schema(doc, ref_or_schema):
    ref = ref_or_schema.get("$ref")
    return doc["components"]["schemas"][ref.rsplit("/", 1)[1]] if ref else ref_or_schema


def _lists(app) -> list[str]:
    doc = app.openapi()
    paths = []
    for path, item in doc["paths"].items():
        op = item.get("get")
        if op is None or not path.startswith("/v1/") or "{" in path:
            continue
        content = op["responses"]["200"].get("content", {}).get("application/json")
        if content is None:
            continue
        schema = _schema(doc, content["schema"])
        if path in SERIES:
            assert schema.get("type") == "array"
            continue
        if schema.get("type") == "array" or "items" in schema.get("properties", {}):
            assert set(schema.get("properties", {})) >= {"items", "next_cursor"}, f"{path} is not a Page"
            params = {p["name"] for p in op.get("parameters", [])}
            assert {"limit", "cursor"} <= params, path
            paths.append(path)
    return paths


@pytest.fixture
def book(api):
    seeded = seed_book(api, "PAGE")
    ok(api.post(f"/v1/webhook-endpoints/{seeded.params['endpoint_id']}/test"), 202)  # a second delivery
    return seeded


def test_every_list_pages_the_same_way(app, api, book):
    lists = _lists(app)
    assert len(lists) >= 12
    several = 0
    for path in lists:
        whole = ok(api.get(path, params={"limit": 1000}))
        assert whole["next_cursor"] is None and whole["items"], path
        assert ok(api.get(path, params={"cursor": ""})) == ok(api.get(path)), path
        walked, cursor, pages = [], None, 0
        while True:
            page = ok(api.get(path, params={"limit": 1, **({"cursor": cursor} if cursor else {})}))
            walked += page["items"]
            pages += 1
            cursor = page["next_cursor"]
            if cursor is None:
                break
            assert re.fullmatch(r"[A-Za-z0-9_-]+", cursor), path
        assert walked == whole["items"], path
        assert pages == len(whole["items"]), path
        several += len(walked) > 1
    assert several >= 8


def _cursor_refused(api, path, cursor) -> None:
    r = api.get(path, params={"cursor": cursor})
    assert r.status_code == 422, f"{path} cursor={cursor!r}: {r.status_code} {r.text}"
    assert r.headers["content-type"] == "application/problem+json"
    assert [e["pointer"] for e in r.json()["errors"]] == ["/cursor"], r.text


def test_forged_cursors_are_a_422_naming_cursor_never_a_500(app, api, book):
    for path in _lists(app):
        for forged in ("%%%", "not a cursor", "AAAA", _forge({"id": 1}), _forge("x"), _forge([]),
                       _forge([1, 2, 3, 4, 5, 6]), _forge(None), "eyJ"):
            _cursor_refused(api, path, forged)
        real = ok(api.get(path, params={"limit": 1}))["next_cursor"]
        if real is None:
            continue
        padded = real + "=" * (-len(real) % 4)
        values = json.loads(base64.urlsafe_b64decode(padded))
        # Each value of a genuine cursor replaced by one of another type or out of range.
        for i in range(len(values)):
            for wrong in (None, True, 1.5, -1, 2**70, [1], {"a": 1}, "9" * 30, "2026-13-45", "\u0000"):
                forged = _forge([*values[:i], wrong, *values[i + 1:]])
                r = api.get(path, params={"cursor": forged})
                assert r.status_code in (200, 422), f"{path} {values} -> {wrong!r}: {r.status_code} {r.text}"
                if r.status_code == 422:
                    pointers = [e["pointer"] for e in r.json().get("errors", [])]
                    assert pointers == ["/cursor"], f"{path} {wrong!r}: {r.text}"


def test_limit_is_bounded(app, api):
    for path in _lists(app):
        for bad in ("0", "1001", "-1", "x"):
            r = api.get(path, params={"limit": bad})
            assert r.status_code == 422 and r.json()["errors"][0]["pointer"] == "/limit", f"{path} {bad}: {r.text}"
