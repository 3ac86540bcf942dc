"""References in URL paths: `/v1/invoices/FA%202026%2F001` addresses the invoice `FA 2026/001`.

ASGI servers percent-decode the path before routing, so an encoded slash inside a reference would
look like a path separator. `EncodedSlashes` rebuilds the routing path from the raw one, segment by
segment, with each encoded slash turned into a character no reference may hold (NUL); the `ref`
convertor (`{invoice_ref:ref}`) turns it back into "/". A reference never swallows the rest of the
path, so `/v1/buyers/{buyer_ref:ref}/limits` and `/v1/invoices/batch` route as they always did.
"""

from __future__ import annotations

from typing import Annotated
from urllib.parse import quote, unquote

from fastapi import Path
from starlette.convertors import Convertor, register_url_convertor
from starlette.types import ASGIApp, Receive, Scope, Send

from app.core.fields import Ref

SLASH = "\x00"  # stands for an encoded "/" inside one path segment while routing
_NUL_SEEN = "\x01"  # a NUL the client itself sent: still refused (a control character), never a slash


def routing_path(raw_path: bytes) -> str:
    """The decoded path, with each encoded slash of a segment replaced by SLASH."""
    segments = raw_path.decode("latin-1").split("/")
    return "/".join(unquote(s).replace(SLASH, _NUL_SEEN).replace("/", SLASH) for s in segments)


class EncodedSlashes:
    """ASGI middleware: keep `%2F` inside a path segment distinguishable from a separator."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        raw = scope.get("raw_path") if scope["type"] == "http" else None
        if raw and b"%" in raw:  # an encoded "/" (or a NUL, which must not pass for one)
            scope = dict(scope)
            scope["path"] = routing_path(raw.split(b"?", 1)[0])
        await self.app(scope, receive, send)


class RefConvertor(Convertor[str]):
    regex = "[^/]+"

    def convert(self, value: str) -> str:
        return value.replace(SLASH, "/")

    def to_string(self, value: str) -> str:
        return quote(value, safe="")


register_url_convertor("ref", RefConvertor())

RefPath = Annotated[
    Ref,
    Path(description="The reference as the ERP writes it, percent-encoded: `FA 2026/001` is `FA%202026%2F001`."),
]
