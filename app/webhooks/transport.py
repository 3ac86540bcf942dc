"""An httpx transport pinned to a checked address, with a deadline for the whole exchange.

Pinning closes the DNS-rebinding window: the dispatcher resolves the URL's host once, checks every
address (`urls.resolve_checked`), and this transport connects to the checked address whatever the
URL's host resolves to afterwards. The request keeps the URL: the `Host` header, TLS SNI and
certificate verification all use the URL's host name. A connection to any other host (a redirect is
never followed anyway) is refused.

The deadline is absolute: every connect, TLS handshake, write and read gets at most the time left
until it, so a receiver that answers one byte at a time cannot keep a send alive past it (httpx's own
timeouts are per phase and per read). The dispatcher keeps the deadline below the delivery's lease.

A connection is kept alive for the next delivery to the same receiver (`PinnedClients`): one client per host,
port and checked address, whose deadline is set again before each exchange. A delivery whose URL now resolves
to another address gets another client: a connection is only ever used for the address checked for it.

It plugs a network backend into httpcore's pool (`httpcore.ConnectionPool(network_backend=...)`, a
public httpcore API); httpx has no parameter for it, so the pool its transport built is replaced.
"""

from __future__ import annotations

import ssl
import time
import typing
from collections import OrderedDict
from functools import lru_cache
from http.cookiejar import CookieJar, DefaultCookiePolicy

import httpcore
import httpx

from app.webhooks.urls import IPAddress


class _DeadlineStream(httpcore.NetworkStream):
    """A connection's stream, each operation bounded by its backend's current deadline (that of the exchange under
    way: a kept-alive connection serves several, one after the other)."""

    def __init__(self, stream: httpcore.NetworkStream, backend: PinnedBackend) -> None:
        self._stream = stream
        self._backend = backend

    def _left(self, timeout: float | None, error: type[Exception]) -> float:
        left = self._backend.deadline - time.monotonic()
        if left <= 0:
            raise error("the delivery's deadline passed")
        return left if timeout is None else min(timeout, left)

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._stream.read(max_bytes, self._left(timeout, httpcore.ReadTimeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._stream.write(buffer, self._left(timeout, httpcore.WriteTimeout))

    def close(self) -> None:
        self._stream.close()

    def start_tls(self, ssl_context: ssl.SSLContext, server_hostname: str | None = None,
                  timeout: float | None = None) -> httpcore.NetworkStream:
        tls = self._stream.start_tls(ssl_context, server_hostname, self._left(timeout, httpcore.ConnectTimeout))
        return _DeadlineStream(tls, self._backend)

    def get_extra_info(self, info: str) -> typing.Any:
        return self._stream.get_extra_info(info)


class PinnedBackend(httpcore.NetworkBackend):
    """Connects `host:port` to `address`, and nothing else anywhere; `deadline` bounds the exchange under way."""

    def __init__(self, host: str, port: int, address: IPAddress, deadline: float) -> None:
        self.host, self.port, self.address, self.deadline = host.lower(), port, address, deadline
        self._system = httpcore.SyncBackend()
        self.connected_to: list[str] = []

    def connect_tcp(self, host: str, port: int, timeout: float | None = None, local_address: str | None = None,
                    socket_options: typing.Iterable[typing.Any] | None = None) -> httpcore.NetworkStream:
        if (host.strip("[]").lower(), port) != (self.host, self.port):
            raise httpcore.ConnectError(f"refused: {host}:{port} is not the checked host")
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise httpcore.ConnectTimeout("the delivery's deadline passed")
        stream = self._system.connect_tcp(str(self.address), port, timeout=left if timeout is None else
                                          min(timeout, left), local_address=local_address,
                                          socket_options=socket_options)
        self.connected_to.append(str(self.address))
        return _DeadlineStream(stream, self)

    def connect_unix_socket(self, path: str, timeout: float | None = None,
                            socket_options: typing.Iterable[typing.Any] | None = None) -> httpcore.NetworkStream:
        raise httpcore.ConnectError("refused: unix sockets")

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)


@lru_cache(maxsize=4)
def ssl_context(ca_file: str | None = None) -> ssl.SSLContext:
    """The public CAs (certifi), plus `ca_file`'s when given (COVERWATCH_WEBHOOK_CA_FILE)."""
    context = httpx.create_ssl_context(trust_env=False)
    if ca_file:
        context.load_verify_locations(cafile=ca_file)
    return context


class PinnedTransport(httpx.HTTPTransport):
    def __init__(self, backend: PinnedBackend, context: ssl.SSLContext) -> None:
        super().__init__(verify=context, retries=0)
        self.backend = backend
        self._pool = httpcore.ConnectionPool(ssl_context=context, max_connections=1, retries=0,
                                             network_backend=backend)


def pinned_client(host: str, port: int, address: IPAddress, deadline: float, ca_file: str | None = None
                  ) -> tuple[httpx.Client, PinnedBackend]:
    """A client with one connection, to `address` for `host:port`, and its backend (whose `deadline`, a
    `time.monotonic()` value, bounds the exchange under way)."""
    backend = PinnedBackend(host, port, address, deadline)
    # No cookies kept: a receiver's Set-Cookie is not sent back with the next delivery.
    client = httpx.Client(transport=PinnedTransport(backend, ssl_context(ca_file)), follow_redirects=False,
                          trust_env=False, cookies=CookieJar(DefaultCookiePolicy(allowed_domains=[])))
    return client, backend


class PinnedClients:
    """One sender's clients, kept between its deliveries so that a receiver's connection is reused (a TCP
    connection per delivery, and on HTTPS a TLS handshake, cost a quarter of the dispatcher's rate to a receiver
    on the same machine; more across a network): one per (host, port, checked address, CA file), the least
    recently used closed beyond `keep`. `close()` closes them all."""

    def __init__(self, keep: int = 8) -> None:
        self.keep = keep
        self._clients: OrderedDict[tuple[str, int, str, str | None], tuple[httpx.Client, PinnedBackend]] = (
            OrderedDict())

    def get(self, host: str, port: int, address: IPAddress, deadline: float, ca_file: str | None = None
            ) -> tuple[httpx.Client, PinnedBackend]:
        """The client for this target, its deadline set to `deadline` for the exchange about to start."""
        key = (host, port, str(address), ca_file)
        pair = self._clients.pop(key, None)
        if pair is None:
            pair = pinned_client(host, port, address, deadline, ca_file)
            while len(self._clients) >= self.keep:
                self._clients.popitem(last=False)[1][0].close()
        self._clients[key] = pair
        pair[1].deadline = deadline
        return pair

    def discard(self, host: str, port: int, address: IPAddress, ca_file: str | None = None) -> None:
        """Close this target's client: the next `get` opens a new connection."""
        pair = self._clients.pop((host, port, str(address), ca_file), None)
        if pair is not None:
            pair[0].close()

    def close(self) -> None:
        while self._clients:
            self._clients.popitem()[1][0].close()
