"""The OpenAPI document, told from what the app really does.

FastAPI documents the happy path. This completes every operation from the mechanisms the
operation uses, found by walking its dependencies, so that a route added anywhere is documented
the same way without saying anything:

- authentication (`authenticate`, the scope dependencies): the `bearer` security scheme, the
  scope in the description, 401 and (above `read`) 403;
- `Idempotency-Key` (the idempotency dependency): the request header and `Idempotent-Replayed`;
- GET: `ETag`, `If-None-Match` and the 304;
- every error as `application/problem+json` with the `Problem` schema, for the codes that can
  occur: 400/413/415 with a body, 404 with a path parameter (or a body naming other objects),
  409 on writes, 422 with any input, 503 wherever the database is used;
- a request example for every body and a response example for every 2xx (app/core/examples.py).

A route adds its own with `responses=` (a 409 it knows of, a 503 of its own); those are kept.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Any, cast

from fastapi import FastAPI, routing
from fastapi.dependencies.models import Dependant
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute

from app.core import examples
from app.core.errors import PROBLEM_JSON

SCHEME = "bearer"

PROBLEM_SCHEMA: dict[str, Any] = {
    "title": "Problem",
    "type": "object",
    "description": "RFC 9457 problem details. `errors` names each offending input by JSON pointer "
    "(or by XPath, for an XML document).",
    "required": ["type", "title", "status", "detail"],
    "properties": {
        "type": {"type": "string", "format": "uri", "description": "Identifies the kind of problem",
                 "examples": ["https://coverwatch.dev/problems/validation-error"]},
        "title": {"type": "string", "examples": ["Invalid request"]},
        "status": {"type": "integer", "minimum": 400, "maximum": 599, "examples": [422]},
        "detail": {"type": "string", "examples": ["/amount: must be a decimal string such as \"1250.00\""]},
        "instance": {"type": "string", "description": "The request path"},
        "errors": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "pointer": {"type": "string", "description": "JSON pointer (RFC 6901) into the request",
                                "examples": ["/items/3/amount"]},
                    "xpath": {"type": "string", "description": "The element of an XML document"},
                    "detail": {"type": "string"},
                },
                "required": ["detail"],
            },
        },
        "missing_rates": {"type": "array", "items": {"type": "string", "examples": ["EUR/USD"]},
                          "description": "With `fx-rate-missing`: the FX rates to PUT first"},
    },
}

_DESCRIPTIONS = {
    400: "The body cannot be read: malformed JSON or not UTF-8",
    401: "No API key, or an unknown or revoked one",
    403: "The API key's scope does not allow this",
    404: "Not found (another tenant's object is not found either)",
    409: "Conflict: a concurrent request changed the same data, or the request contradicts stored data",
    413: "The body (or a batch) is above the configured limits",
    415: "The body is not of a media type this operation takes",
    422: "A field is invalid: `errors` names each by pointer",
    503: "The database is unavailable or busy; retry after `Retry-After` seconds",
}

_RETRY_AFTER = {"Retry-After": {"description": "Seconds to wait before retrying", "schema": {"type": "integer"}}}
_ETAG = {"ETag": {"description": "Send it back in If-None-Match: a 304 until the answer changes",
                  "schema": {"type": "string"}}}
_REPLAYED = {"Idempotent-Replayed": {
    "description": "`true` when this is the stored answer to an earlier request with the same Idempotency-Key",
    "schema": {"type": "string", "enum": ["true"]}}}

IDEMPOTENCY_KEY = {
    "name": "Idempotency-Key", "in": "header", "required": False,
    "description": "Makes a retry safe: a request repeated with the same key and body gets the first "
    "response again (`Idempotent-Replayed: true`); the same key with another body is a 422; the same key "
    "while the first request still runs is a 409 `idempotency-in-progress` (retry after `Retry-After`).",
    "schema": {"type": "string", "minLength": 1, "maxLength": 255},
}
IF_NONE_MATCH = {
    "name": "If-None-Match", "in": "header", "required": False,
    "description": "The ETag of an earlier answer: 304 with no body while nothing changed.",
    "schema": {"type": "string"},
}


def _calls(dependant: Dependant) -> Iterator[Callable[..., Any]]:
    for dep in dependant.dependencies:
        if dep.call is not None:
            yield dep.call
        yield from _calls(dep)


def _problem(status: int) -> dict[str, Any]:
    response: dict[str, Any] = {
        "description": _DESCRIPTIONS.get(status, "Error"),
        "content": {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}},
    }
    if status in (409, 503):
        response["headers"] = dict(_RETRY_AFTER)
    if status == 401:
        response["headers"] = {"WWW-Authenticate": {"schema": {"type": "string"}}}
    return response


def _error_codes(route: APIRoute, method: str, op: dict[str, Any], scope: str | None) -> list[int]:
    has_body = "requestBody" in op
    has_params = bool(op.get("parameters")) or has_body
    codes: set[int] = {503}
    if scope is not None:
        codes.add(401)
        if scope != "read":
            codes.add(403)
    if has_body:
        codes |= {400, 413, 415}
    if has_params:
        codes.add(422)
    if route.dependant.path_params or (has_params and scope is not None):  # a ref in a body or query too
        codes.add(404)
    if method != "get" and scope is not None:
        codes.add(409)
    return sorted(codes)


def _complete(route: APIRoute, method: str, op: dict[str, Any]) -> None:
    from app.core.idempotency import idempotency
    from app.core.security import authenticate

    calls = list(_calls(route.dependant))
    scopes = [c.required_scope for c in calls if hasattr(c, "required_scope")]  # type: ignore[attr-defined]
    scope = str(scopes[0]) if scopes else ("read" if authenticate in calls else None)
    responses: dict[str, Any] = op.setdefault("responses", {})
    params: list[dict[str, Any]] = op.setdefault("parameters", [])

    if route.summary is None and route.description:
        # The docstring's first sentence is the summary; the whole docstring stays the description.
        paragraph = " ".join(route.description.strip().split("\n\n")[0].split())
        op["summary"] = re.split(r"(?<=[.!?])\s", paragraph, maxsplit=1)[0].rstrip(".")
    if scope is not None:
        op["security"] = [{SCHEME: []}]
        note = f"Scope: `{scope}`."
        op["description"] = f"{op.get('description', '').rstrip()}\n\n{note}".strip()
    if idempotency in calls:
        params.append(IDEMPOTENCY_KEY)
        for code, response in responses.items():
            if code.startswith("2"):
                response.setdefault("headers", {}).update(_REPLAYED)
    if method == "get" and route.path_format not in ("/healthz",):
        params.append(IF_NONE_MATCH)
        for code, response in responses.items():
            if code.startswith("2"):
                response.setdefault("headers", {}).update(_ETAG)
        responses.setdefault("304", {"description": "Not modified: the ETag sent in If-None-Match still holds",
                                     "headers": dict(_ETAG)})
    if not params:
        op.pop("parameters")

    responses.pop("422", None)  # FastAPI's HTTPValidationError: replaced by the problem below
    declared = {int(code) for code in responses if code[0] in "45"}  # a route's own `responses=` (its 409...)
    for status in sorted(declared | set(_error_codes(route, method, op, scope))):
        existing = responses.get(str(status))
        problem = _problem(status)
        if existing is not None:
            problem["description"] = existing.get("description") or problem["description"]
        responses[str(status)] = problem


def build(app: FastAPI) -> dict[str, Any]:
    schema = get_openapi(
        title=app.title, version=app.version, openapi_version=app.openapi_version, summary=app.summary,
        description=app.description, routes=app.routes, webhooks=app.webhooks.routes, tags=app.openapi_tags,
        separate_input_output_schemas=app.separate_input_output_schemas,
    )
    components = schema.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    schemas.pop("HTTPValidationError", None)
    schemas.pop("ValidationError", None)
    schemas["Problem"] = PROBLEM_SCHEMA
    components["securitySchemes"] = {SCHEME: {
        "type": "http", "scheme": "bearer", "bearerFormat": "cw_...",
        "description": "An API key (`Authorization: Bearer cw_...`). Scopes nest: `read` (GET), `ingest` "
        "(read, plus ledger writes and credit checks), `admin` (everything).",
    }}
    # Routes of included routers are seen through their context (prefix, tags, dependencies applied).
    for context in routing.iter_route_contexts(app.routes):
        if not isinstance(context.original_route, APIRoute):
            continue
        route = cast(APIRoute, context)
        if not route.include_in_schema:
            continue
        for method in route.methods or ():
            op = schema["paths"].get(route.path_format, {}).get(method.lower())
            if op is not None:
                _complete(route, method.lower(), op)
    for hooks in schema.get("webhooks", {}).values():
        for op in hooks.values():
            op.get("responses", {}).pop("422", None)
    examples.complete(schema)
    return schema


def install(app: FastAPI) -> None:
    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = build(app)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
