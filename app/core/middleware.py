"""ASGI middleware: request body size limit, and ETags on GET responses."""

from __future__ import annotations

import hashlib
import json
import logging
import re
from typing import Any

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.core.errors import PROBLEM_BASE, PROBLEM_JSON, TooLarge

log = logging.getLogger("coverwatch.errors")


async def _send_problem(send: Send, status: int, title: str, detail: str, type_: str,
                        headers: list[tuple[bytes, bytes]] | None = None) -> None:
    body = json.dumps({"type": PROBLEM_BASE + type_, "title": title, "status": status, "detail": detail}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", PROBLEM_JSON.encode()), (b"content-length", str(len(body)).encode()),
                        *(headers or [])],
        }
    )
    await send({"type": "http.response.body", "body": body})


class _BodyTooLarge(TooLarge):
    """Raised from `receive`: FastAPI wraps what reading the body raises in a 400, whose cause this stays
    (app.core.errors turns that 400 back into this 413)."""


class BodySizeLimit:
    """413 for bodies over the limit, whether announced by Content-Length or streamed."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        detail = f"Request bodies are limited to {self.max_bytes} bytes."
        length = Headers(scope=scope).get("content-length")
        if length is not None and length.isdigit() and int(length) > self.max_bytes:
            await _send_problem(send, 413, "Payload too large", detail, "payload-too-large")
            return
        received = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise _BodyTooLarge(detail)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except _BodyTooLarge:
            if not started:
                await _send_problem(send, 413, "Payload too large", detail, "payload-too-large")


class ETagMiddleware:
    """Every successful GET answers with an ETag; If-None-Match with it gets a 304.

    Endpoints that can tell the tag before doing any work (the exposure reads)
    set it themselves and answer 304 early; this covers all the other GETs.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "GET":
            await self.app(scope, receive, send)
            return
        if_none_match = Headers(scope=scope).get("if-none-match")
        start: Message | None = None
        passthrough = False
        chunks: list[bytes] = []

        async def buffering_send(message: Message) -> None:
            nonlocal start, passthrough
            if message["type"] == "http.response.start":
                start = message
                headers = Headers(raw=message["headers"])
                # Streamed downloads (reports, exports) are not buffered: memory stays flat.
                passthrough = (message["status"] != 200 or "etag" in headers
                               or headers.get("content-disposition", "").startswith("attachment"))
                if passthrough:
                    await send(message)
                return
            if passthrough or message["type"] != "http.response.body":
                await send(message)
                return
            assert start is not None
            chunks.append(message.get("body", b""))
            if message.get("more_body"):
                return
            body = b"".join(chunks)
            # The tenant is part of the tag: two tenants' equal answers (an empty list) never share one.
            tenant = str(scope.get("state", {}).get("tenant_id", "")).encode()
            etag = 'W/"' + hashlib.sha256(tenant + b"\n" + body).hexdigest()[:32] + '"'
            if if_none_match is not None and etag in [t.strip() for t in if_none_match.split(",")]:
                await send({"type": "http.response.start", "status": 304, "headers": [(b"etag", etag.encode())]})
                await send({"type": "http.response.body", "body": b""})
                return
            raw = [(k, v) for k, v in start["headers"] if k.lower() != b"content-length"]
            raw += [(b"etag", etag.encode()), (b"content-length", str(len(body)).encode())]
            await send({"type": "http.response.start", "status": 200, "headers": raw})
            await send({"type": "http.response.body", "body": body})

        await self.app(scope, receive, buffering_send)


class AllowedMethods:
    """405 with a true `Allow` header: every method of every path template the path matches.

    Starlette answers a method mismatch with the methods of the first route it partly matched only
    (`OPTIONS /v1/buyers/X` said `Allow: PUT` although GET works). A path may match several templates
    (`/v1/invoices/batch` is the batch endpoint and the invoice numbered "batch"): `Allow` names them all.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._templates: list[tuple[re.Pattern[str], int, str, frozenset[str]]] | None = None

    def _load(self, routes: list[Any]) -> list[tuple[re.Pattern[str], int, str, frozenset[str]]]:
        from fastapi import routing

        methods: dict[str, set[str]] = {}
        regexes: dict[str, re.Pattern[str]] = {}
        for context in routing.iter_route_contexts(routes):
            path_format, verbs = getattr(context, "path_format", None), getattr(context, "methods", None)
            if path_format is None or not verbs or not hasattr(context, "path_regex"):
                continue
            methods.setdefault(path_format, set()).update(verbs)
            regexes[path_format] = context.path_regex
        for verbs in methods.values():
            if "GET" in verbs:
                verbs.add("HEAD")
        return [(regexes[p], p.count("{"), p, frozenset(v)) for p, v in methods.items()]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if self._templates is None:
            self._templates = self._load(scope["app"].routes)
        matches = [verbs for regex, _, _, verbs in self._templates if regex.match(scope["path"])]
        if matches:
            allowed = frozenset().union(*matches)
            if scope["method"] not in allowed:
                allow = ", ".join(sorted(allowed))
                await _send_problem(send, 405, "Method not allowed",
                                    f"{scope['method']} is not allowed here; allowed: {allow}.",
                                    "method-not-allowed", headers=[(b"allow", allow.encode())])
                return
        await self.app(scope, receive, send)


class UnexpectedErrors:
    """A 500 problem for an unexpected exception, answered here so that the connection stays open.

    Starlette's outermost error middleware re-raises after answering, and the server then drops the
    keep-alive connection; an error caught inside the stack is one response like any other.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception:
            log.exception("unhandled error on %s %s", scope.get("method"), scope.get("path"))
            if started:
                raise
            await _send_problem(send, 500, "Internal server error",
                                "An unexpected error occurred; nothing was written.", "internal-error")
