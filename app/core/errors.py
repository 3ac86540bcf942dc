"""RFC 9457 problem details: one exception base, one renderer for every error."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DataError, IntegrityError, OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException

from app.core.retry import request_retry

log = logging.getLogger("coverwatch.errors")

PROBLEM_BASE = "https://coverwatch.dev/problems/"
PROBLEM_JSON = "application/problem+json"


def pointer(loc: Sequence[Any]) -> str:
    """JSON pointer (RFC 6901) for a pydantic location, without the 'body'/'query' prefix."""
    parts = list(loc)
    if parts and parts[0] in {"body", "query", "path", "header"}:
        parts = parts[1:]
    escaped = [str(p).replace("~", "~0").replace("/", "~1") for p in parts]
    return "/" + "/".join(escaped) if escaped else ""


class ProblemError(Exception):
    """A domain or request error rendered as application/problem+json."""

    status: int = 400
    type: str = "bad-request"
    title: str = "Bad request"

    def __init__(
        self,
        detail: str,
        *,
        status: int | None = None,
        type: str | None = None,
        title: str | None = None,
        field: str | None = None,
        errors: list[dict[str, str]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        if status is not None:
            self.status = status
        if type is not None:
            self.type = type
        if title is not None:
            self.title = title
        self.errors = errors or ([{"pointer": field, "detail": detail}] if field is not None else [])
        self.headers = headers or {}

    def body(self, instance: str | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {
            "type": PROBLEM_BASE + self.type,
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
        }
        if instance:
            body["instance"] = instance
        if self.errors:
            body["errors"] = self.errors
        return body


class Invalid(ProblemError):
    """422: the request is well-formed but a field breaks a business rule."""

    status = 422
    type = "validation-error"
    title = "Invalid request"


class FxRateMissing(ProblemError):
    """422: an answer needs an FX rate that is missing (DOMAIN.md rule 9: unknown, never zero)."""

    status = 422
    type = "fx-rate-missing"
    title = "FX rate missing"

    def __init__(self, pairs: Sequence[tuple[str, str]], on: Any) -> None:
        names = ", ".join(f"{a}/{b}" for a, b in pairs)
        super().__init__(f"No FX rate {names} on or before {on}: PUT /v1/fx-rates first.")
        self.pairs = list(pairs)

    def body(self, instance: str | None = None) -> dict[str, Any]:
        return super().body(instance) | {"missing_rates": [f"{a}/{b}" for a, b in self.pairs]}


class NotFound(ProblemError):
    status = 404
    type = "not-found"
    title = "Not found"


class Conflict(ProblemError):
    status = 409
    type = "conflict"
    title = "Conflict"


class TooLarge(ProblemError):
    status = 413
    type = "payload-too-large"
    title = "Payload too large"


class Unauthorized(ProblemError):
    status = 401
    type = "unauthorized"
    title = "Unauthorized"


class Forbidden(ProblemError):
    status = 403
    type = "forbidden"
    title = "Forbidden"


def problem_response(problem: ProblemError, request: Request | None = None) -> JSONResponse:
    return JSONResponse(
        # An encoded "/" inside a reference is routed as NUL (app.core.paths): shown encoded again.
        problem.body(request.url.path.replace("\x00", "%2F") if request is not None else None),
        status_code=problem.status,
        media_type=PROBLEM_JSON,
        headers=problem.headers,
    )


def validation_problem(errors: Sequence[Any]) -> Invalid:
    items = [{"pointer": pointer(e.get("loc", ())), "detail": e.get("msg", "invalid")} for e in errors]
    first = items[0] if items else {"pointer": "", "detail": "invalid"}
    where = first["pointer"] or "the request"
    return Invalid(f"{where}: {first['detail']}", errors=items)


class UnsupportedMediaType(ProblemError):
    status = 415
    type = "unsupported-media-type"
    title = "Unsupported media type"


def malformed_body(detail: str) -> ProblemError:
    """400 for a body that cannot be read as JSON (malformed, or not UTF-8): one shape for both."""
    return ProblemError(f"The body is not valid JSON: {detail}. Send a JSON document, in UTF-8.", status=400,
                        type="malformed-body", title="Malformed body",
                        errors=[{"pointer": "", "detail": f"not valid JSON ({detail})"}])


def _is_json(content_type: str) -> bool:
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or (media.startswith("application/") and media.endswith("+json"))


def _body_problem(request: Request, errors: Sequence[dict[str, Any]]) -> ProblemError | None:
    """415 for a JSON body sent as something else, 400 for one that is not JSON: before any field is judged."""
    body_errors = [e for e in errors if tuple(e.get("loc", ()))[:1] == ("body",)]
    if not body_errors:
        return None
    has_body = request.headers.get("content-length", "0") != "0" or "transfer-encoding" in request.headers
    content_type = request.headers.get("content-type", "")
    if has_body and not _is_json(content_type):
        sent = f"'{content_type}'" if content_type else "no Content-Type"
        return UnsupportedMediaType(
            f"This operation takes a JSON body: send 'Content-Type: application/json' (the request has {sent}).",
            errors=[{"pointer": "", "detail": "Content-Type must be application/json"}],
        )
    decode = next((e for e in body_errors if e.get("type") == "json_invalid"), None)
    if decode is not None:
        reason = (decode.get("ctx") or {}).get("error") or "JSON decode error"
        return malformed_body(str(reason).split(":")[0])
    return None


def install(app: FastAPI) -> None:
    @app.exception_handler(ProblemError)
    async def _problem(request: Request, exc: ProblemError) -> JSONResponse:
        return problem_response(exc, request)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        problem = _body_problem(request, exc.errors()) or validation_problem(exc.errors())
        return problem_response(problem, request)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if isinstance(exc.__cause__, TooLarge):  # the body limit, hit while FastAPI read the body
            return problem_response(exc.__cause__, request)
        if exc.status_code == 400 and exc.detail == "There was an error parsing the body":
            # FastAPI's answer to a body it cannot decode (not UTF-8): the same problem as malformed JSON.
            return problem_response(malformed_body("not UTF-8 text"), request)
        titles = {404: "Not found", 405: "Method not allowed", 401: "Unauthorized", 403: "Forbidden"}
        problem = ProblemError(
            str(exc.detail),
            status=exc.status_code,
            type={404: "not-found", 405: "method-not-allowed"}.get(exc.status_code, "http-error"),
            title=titles.get(exc.status_code, "HTTP error"),
            headers=dict(exc.headers or {}),
        )
        return problem_response(problem, request)

    @app.exception_handler(IntegrityError)
    async def _conflict(request: Request, exc: IntegrityError) -> JSONResponse:
        # Two requests racing to create the same thing (a ref): the loser is run again (app.core.retry) and
        # finds the winner's row; this answer goes out only when the re-runs are spent.
        if not request_retry(request, exc):
            log.info("integrity conflict on %s %s: %s", request.method, request.url.path, exc.orig)
        problem = Conflict("A concurrent request changed the same data; nothing was written. Retry the request.",
                           headers={"Retry-After": "1"})
        return problem_response(problem, request)

    @app.exception_handler(DataError)
    async def _unstorable(request: Request, exc: DataError) -> JSONResponse:
        # Validation should have caught it; the database is the last line: still a 4xx, never a 500.
        log.warning("value refused by the database on %s %s: %s", request.method, request.url.path, exc.orig)
        return problem_response(Invalid("A value in the request cannot be stored (out of range or malformed)."),
                                request)

    @app.exception_handler(OperationalError)
    async def _db_unavailable(request: Request, exc: OperationalError) -> JSONResponse:
        # A deadlock, a serialization failure or a busy SQLite is run again (app.core.retry) before this
        # answer goes out; the 503 is for the database being down, or busy through every re-run.
        if not request_retry(request, exc):
            log.error("database error: %s", exc.orig)
        problem = ProblemError(
            "The database is unavailable or busy; retry the request.",
            status=503,
            type="database-unavailable",
            title="Service unavailable",
            headers={"Retry-After": "1"},
        )
        return problem_response(problem, request)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        problem = ProblemError(
            "An unexpected error occurred; nothing was written.",
            status=500,
            type="internal-error",
            title="Internal server error",
        )
        return problem_response(problem, request)
