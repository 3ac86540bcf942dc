"""The OpenAPI document tells the truth: errors, security, headers, enums, webhooks; and the API keeps to it."""

import json
from datetime import date
from pathlib import Path

import pytest

from tests.helpers import buyer, invoice, ok

DOC = json.loads((Path(__file__).resolve().parents[2] / "openapi" / "openapi.json").read_text())
OPERATIONS = [(path, method, op) for path, item in DOC["paths"].items() for method, op in item.items()]


def test_no_fastapi_validation_schema_is_left():
    assert "HTTPValidationError" not in json.dumps(DOC)
    assert "ValidationError" not in DOC["components"]["schemas"]


@pytest.mark.parametrize(("path", "method", "op"), OPERATIONS, ids=[f"{m} {p}" for p, m, _ in OPERATIONS])
def test_every_error_is_a_documented_problem(path, method, op):
    errors = {code: r for code, r in op["responses"].items() if code[0] in "45"}
    assert errors, "no error documented"
    for code, response in errors.items():
        assert list(response["content"]) == ["application/problem+json"], code
        assert response["content"]["application/problem+json"]["schema"] == {"$ref": "#/components/schemas/Problem"}
    if path.startswith("/v1/"):
        assert {"401", "422", "503"} <= set(errors) or (method == "get" and {"401", "503"} <= set(errors))
        assert op["security"] == [{"bearer": []}]
        assert "Scope: `" in op["description"]
        assert op["summary"] and not op["summary"].islower()
    if "requestBody" in op:
        assert {"400", "413", "415", "422"} <= set(errors)


def test_security_headers_and_problem_schema():
    assert DOC["components"]["securitySchemes"]["bearer"] == {**DOC["components"]["securitySchemes"]["bearer"],
                                                              "type": "http", "scheme": "bearer"}
    problem = DOC["components"]["schemas"]["Problem"]["properties"]
    assert {"type", "title", "status", "detail", "instance", "errors", "missing_rates"} <= set(problem)
    assert {"pointer", "xpath", "detail"} <= set(problem["errors"]["items"]["properties"])
    post = DOC["paths"]["/v1/invoices/batch"]["post"]
    assert "Idempotency-Key" in [p["name"] for p in post["parameters"]]
    assert "Idempotent-Replayed" in post["responses"]["200"]["headers"]
    get = DOC["paths"]["/v1/buyers"]["get"]
    assert "If-None-Match" in [p["name"] for p in get["parameters"]]
    assert "ETag" in get["responses"]["200"]["headers"] and "304" in get["responses"]


def test_enums_patterns_and_webhooks():
    schemas = DOC["components"]["schemas"]
    assert "exposure_above_cover" in schemas["AlertOut"]["properties"]["type"]["enum"]
    assert "missing_fx_rate" in json.dumps(schemas["CreditCheckOut"]["properties"]["reasons"])
    assert "-" not in schemas["InvoiceIn"]["properties"]["amount"]["pattern"].split("\\d")[0]
    assert set(DOC["webhooks"]) == {"alert.opened", "alert.acknowledged", "alert.resolved", "claim.filed",
                                    "endpoint.disabled", "ping"}
    envelope = schemas["AlertEvent"]
    assert {"type", "timestamp", "tenant_id", "data"} <= set(envelope["required"])


def test_a_body_that_is_not_json_is_415_naming_the_content_type(api):
    r = api.put("/v1/buyers/B1", content=b'{"name":"Leclerc SA","country":"FR"}',
                headers={"content-type": "application/x-www-form-urlencoded"})
    assert r.status_code == 415 and r.headers["content-type"] == "application/problem+json"
    assert "Content-Type: application/json" in r.json()["detail"]
    r = api.put("/v1/buyers/B1", content=b'{"name":"Leclerc SA","country":"FR"}')  # no Content-Type at all
    assert r.status_code == 415


@pytest.mark.parametrize("body", [b'{"name":"Leclerc SA",', b'{"name":"Lec\xff","country":"FR"}'])
def test_malformed_json_and_invalid_utf8_get_the_same_problem(api, body):
    r = api.put("/v1/buyers/B1", content=body, headers={"content-type": "application/json"})
    assert r.status_code == 400 and r.headers["content-type"] == "application/problem+json"
    problem = r.json()
    assert problem["type"].endswith("/malformed-body") and problem["errors"][0]["pointer"] == ""


def test_acknowledge_body_is_validated_and_an_empty_one_is_fine(api):
    buyer(api, "B1")
    ok(api.put("/v1/invoices/I1", json={"buyer_ref": "B1", "currency": "EUR", "amount": "100.00",
                                        "issue_date": "2026-01-10", "due_date": "2026-02-10"}))
    alerts = ok(api.get("/v1/alerts"))["items"]
    assert alerts, "an uncovered invoice raises an alert"
    alert_id = alerts[0]["id"]
    bad = api.post(f"/v1/alerts/{alert_id}/acknowledge", json={"unknown": 1})
    assert bad.status_code == 422 and bad.json()["errors"][0]["pointer"] == "/unknown"
    assert ok(api.post(f"/v1/alerts/{alert_id}/acknowledge"))["state"] == "acknowledged"
    assert ok(api.post(f"/v1/alerts/{alert_id}/resolve", json={}))["state"] == "resolved"


def test_allow_lists_every_method_of_the_resource(api):
    r = api.options("/v1/buyers/B1")
    assert r.status_code == 405 and r.headers["allow"] == "GET, HEAD, PUT"
    assert api.delete("/v1/api-keys").headers["allow"] == "GET, HEAD, POST"


def test_an_empty_cursor_is_the_first_page(api):
    buyer(api, "B1")
    assert [b["buyer_ref"] for b in ok(api.get("/v1/buyers?cursor="))["items"]] == ["B1"]
    assert ok(api.get("/v1/alerts?cursor="))["items"] == []


def test_an_integer_field_refuses_a_boolean(api):
    buyer(api, "B1")
    r = api.post("/v1/credit-checks", json={"buyer_ref": "B1", "currency": "EUR", "amount": "10.00",
                                            "payment_terms_days": False})
    assert r.status_code == 422 and r.json()["errors"][0]["pointer"] == "/payment_terms_days"


def test_references_refuse_exactly_what_the_published_pattern_refuses(api):
    import re

    pattern = re.compile(DOC["components"]["schemas"]["BuyerIn"]["properties"].get("buyer_ref", {}).get(
        "pattern") or DOC["paths"]["/v1/buyers/{buyer_ref}"]["put"]["parameters"][0]["schema"]["pattern"])
    for ref, accepted in [("FA 2026/001", True), ("FA\u200b1", False), ("\U000b8cbf", True), ("A\u2028B", False)]:
        assert bool(pattern.match(ref)) is accepted, ref
        from urllib.parse import quote
        r = api.put(f"/v1/buyers/{quote(ref, safe='')}", json={"name": "X", "country": "FR"})
        assert (r.status_code in (200, 201)) is accepted, (ref, r.text)


@pytest.mark.parametrize("values", [[{"a": 1}], [None, None], ["x", {"a": 1}], [[1], [2]], [1, 2]])
def test_a_forged_cursor_of_the_wrong_type_is_a_422(api, values):
    import base64

    cursor = base64.urlsafe_b64encode(json.dumps(values).encode()).decode().rstrip("=")
    for path in ("/v1/buyers", "/v1/invoices", "/v1/exposure/buyers", "/v1/exposure/buyers?sort=-uncovered"):
        r = api.get(path, params={"cursor": cursor})
        assert r.status_code == 422 and r.json()["errors"][0]["pointer"] == "/cursor", (path, r.text)
    cursor = base64.urlsafe_b64encode(b'["1e999","B1"]').decode().rstrip("=")
    assert api.get("/v1/exposure/buyers", params={"cursor": cursor, "sort": "uncovered"}).status_code == 422


def test_far_future_dates_are_a_422_not_a_500(api):
    buyer(api, "B1")
    r = api.post("/v1/credit-checks", json={"buyer_ref": "B1", "currency": "EUR", "amount": "10.00",
                                            "delivery_date": "9999-12-31", "payment_terms_days": 3650})
    assert r.status_code == 422 and r.json()["errors"][0]["pointer"] == "/delivery_date"
    assert api.get("/v1/invoices", params={"due_before": "9999-12-31"}).status_code == 422
    r = api.post("/v1/credit-checks", json={"buyer_ref": "B1", "currency": "EUR", "amount": "10.00",
                                            "delivery_date": "2999-12-31", "payment_terms_days": 3650})
    assert r.status_code == 200


def test_a_chunked_body_over_the_limit_is_a_413(app, api):
    limit = app.state.settings.max_body_bytes

    def chunks():
        for _ in range(limit // 65536 + 2):
            yield b"x" * 65536

    r = api.post("/v1/invoices/batch", content=chunks(), headers={"content-type": "application/json"})
    assert r.status_code == 413 and r.headers["content-type"] == "application/problem+json"


def test_an_unexpected_error_is_answered_inside_the_stack():
    """The 500 is sent by our middleware, which does not re-raise: the server keeps the connection open."""
    import asyncio
    import threading

    from app.core.middleware import UnexpectedErrors

    async def failing(scope, receive, send):
        raise RuntimeError("boom")

    sent = []

    async def send(message):
        sent.append(message)

    async def receive():
        return {"type": "http.request", "body": b""}

    # In a thread of its own: an earlier test in this worker (the browser's sync API) may leave a loop running here.
    call = UnexpectedErrors(failing)({"type": "http", "method": "GET", "path": "/x"}, receive, send)
    worker = threading.Thread(target=asyncio.run, args=(call,))
    worker.start()
    worker.join(timeout=30)
    assert sent[0]["status"] == 500
    assert json.loads(sent[1]["body"])["type"].endswith("/internal-error")


def test_cors_is_off_by_default_and_configurable(database, api):
    from fastapi.testclient import TestClient

    from app.core.config import Settings
    from app.main import create_app

    preflight = {"Origin": "https://dash.example.com", "Access-Control-Request-Method": "GET",
                 "Access-Control-Request-Headers": "authorization"}
    assert "access-control-allow-origin" not in api.options("/v1/buyers", headers=preflight).headers
    settings = Settings(database_url=database.url, scheduler_enabled=False,
                        cors_origins="https://dash.example.com, https://other.example.com/")
    assert settings.cors_origins == ("https://dash.example.com", "https://other.example.com")
    with TestClient(create_app(settings, database)) as client:
        r = client.options("/v1/buyers", headers=preflight)
        assert r.status_code == 200 and r.headers["access-control-allow-origin"] == "https://dash.example.com"
        r = client.get("/v1/buyers", headers={"Origin": "https://dash.example.com"})
        assert r.status_code == 401 and r.headers["access-control-allow-origin"] == "https://dash.example.com"
        # A dashboard reads the tag of a poll and the link of a 202 (a background revaluation).
        exposed = {h.strip().lower() for h in r.headers["access-control-expose-headers"].split(",")}
        assert {"etag", "location", "retry-after"} <= exposed
        r = client.options("/v1/buyers", headers={**preflight, "Origin": "https://evil.example.com"})
        assert "access-control-allow-origin" not in r.headers


def test_etags_include_the_tenant(make_tenant):
    first, second = make_tenant(), make_tenant()
    for path in ("/v1/buyers", "/v1/alerts", "/v1/exposure/countries"):
        a, b = first.client.get(path), second.client.get(path)
        assert a.json() == b.json() and a.headers["etag"] != b.headers["etag"], path
        again = first.client.get(path, headers={"If-None-Match": a.headers["etag"]})
        assert again.status_code == 304
        assert second.client.get(path, headers={"If-None-Match": a.headers["etag"]}).status_code == 200


# ------------------------------------------------------------------------------------------------------------------
# Examples: a request example for every body, a response example for every 2xx with content, each one valid.

BINARY = "binary"


def _examples(content: dict) -> list:
    if "example" in content:
        return [content["example"]]
    return [e["value"] for e in content.get("examples", {}).values()]


def _is_binary(content: dict) -> bool:
    return content.get("schema", {}).get("format") == BINARY


def test_every_operation_has_a_request_and_a_response_example():
    missing = []
    for path, method, op in OPERATIONS:
        body = op.get("requestBody", {}).get("content", {})
        # A ZIP archive of e-invoices has no text form; its media types say what to send.
        if body and not any(_examples(c) for c in body.values()) and not all(_is_binary(c) for c in body.values()):
            missing.append(f"{method} {path}: request")
        for code, response in op["responses"].items():
            content = response.get("content", {})
            if code.startswith("2") and content and not any(_examples(c) for c in content.values()):
                missing.append(f"{method} {path}: {code}")
    assert missing == []


def _validator(schema: dict):
    import jsonschema_rs

    return jsonschema_rs.Draft202012Validator({**schema, "components": DOC["components"]}, validate_formats=True)


@pytest.mark.parametrize(("path", "method", "op"), OPERATIONS, ids=[f"{m} {p}" for p, m, _ in OPERATIONS])
def test_examples_validate_against_their_schemas(path, method, op):
    contents = [("request", m, c) for m, c in op.get("requestBody", {}).get("content", {}).items()]
    contents += [(code, m, c) for code, r in op["responses"].items() if code.startswith("2")
                 for m, c in r.get("content", {}).items()]
    checked = 0
    for where, media, content in contents:
        for example in _examples(content):
            if "json" in media:
                errors = [e.message for e in _validator(content.get("schema", {})).iter_errors(example)]
                assert errors == [], f"{where} {media}: {errors}"
            else:
                assert isinstance(example, str) and example, f"{where} {media}"
            checked += 1
    assert checked or not contents or all(_is_binary(c) for _, _, c in contents)


def test_request_examples_are_taken_by_the_api(api, clock):
    """The hand-written request examples are the bodies an integrator starts from: in this order, each one is
    accepted as it is (the references they share are created by the ones before), on the day they are dated."""
    from app.core.examples import REQUESTS, TODAY

    clock.set(date.fromisoformat(TODAY))
    refs = {"{buyer_ref}": "LECLERC", "{invoice_ref}": "FA%202026%2F001", "{payment_ref}": "VIR%202026-1187",
            "{policy_ref}": "AT-WT-01", "{country}": "FR"}
    order = ["/v1/policies/{policy_ref}", "/v1/buyers/{buyer_ref}", "/v1/policies/{policy_ref}/limits",
             "/v1/invoices/{invoice_ref}", "/v1/invoices/batch", "/v1/payments/{payment_ref}", "/v1/payments/batch",
             "/v1/country-limits/{country}", "/v1/fx-rates", "/v1/credit-checks", "/v1/settings", "/v1/api-keys"]
    done = set()
    for path in order:
        (method, _), body = next(((k, v) for k, v in REQUESTS.items() if k[1] == path))
        url = path
        for name, value in refs.items():
            url = url.replace(name, value)
        ok(api.request(method.upper(), url, json=body), 200, 201)
        done.add((method, path))
    stored = ok(api.get("/v1/invoices/FA%202026%2F001"))
    assert stored["open_balance"] == "9500.00"  # 6,000 allocated, then 2,500 applied oldest due date first
    claim = REQUESTS[("post", "/v1/claims")]
    ok(api.post("/v1/claims", json=claim), 201)
    invoice(api, "FA-2026-003", "30000.00", "2026-11-10", "2027-01-09", buyer_ref="LECLERC")  # above the limit
    alert = ok(api.get("/v1/alerts", params={"state": "open"}))["items"][0]
    for action in ("acknowledge", "resolve"):
        ok(api.post(f"/v1/alerts/{alert['id']}/{action}", json=REQUESTS[("post", f"/v1/alerts/{{alert_id}}/{action}")]))
