"""Real HTTP webhook receivers on 127.0.0.1, for the tests (no mocked transport)."""

from __future__ import annotations

import json
import socket
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from standardwebhooks import Webhook


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes
    peer: str = ""  # the address the request came from

    @property
    def id(self) -> str:
        return self.headers["webhook-id"]

    @property
    def json(self) -> dict[str, Any]:
        return json.loads(self.body)


@dataclass
class Receiver:
    """Records every POST. `status` is what it answers (`respond`, when set, decides per request instead);
    `gate`, when cleared, holds requests until set; `redirect_to` answers 302 there; `drop_ack`, when it
    says so for a request, processes it and closes the connection without answering (a lost acknowledgement).

    With `dedupe`, it behaves like a correct Standard Webhooks consumer: it verifies nothing twice, processing
    each webhook-id once (`processed`) and counting the repeats it acknowledged without processing
    (`duplicates`). `stop()` takes it off the network (connection refused) and `start()` brings it back on
    the same port. With `keep_alive` it speaks HTTP/1.1 and keeps each connection open for the next request
    (HTTP/1.0 otherwise: one request per connection); `connections` counts the connections it accepted."""

    status: int = 200
    dedupe: bool = False
    respond: Callable[[Received], int] | None = None
    redirect_to: str | None = None
    drop_ack: Callable[[Received], bool] | None = None
    received: list[Received] = field(default_factory=list)
    processed: dict[str, Received] = field(default_factory=dict)
    duplicates: int = 0
    hits: int = 0
    gate: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)
    port: int = 0
    tls: ssl.SSLContext | None = None  # serve https with this context; `sni` records the names clients asked
    sni: list[str | None] = field(default_factory=list)
    keep_alive: bool = False
    connections: int = 0

    def __post_init__(self) -> None:
        self.gate.set()
        self.start()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1" if receiver.keep_alive else "HTTP/1.0"

            def setup(self) -> None:  # once per connection
                with receiver.lock:
                    receiver.connections += 1
                super().setup()

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                receiver.gate.wait(timeout=60)
                got = Received({k.lower(): v for k, v in self.headers.items()}, body, self.client_address[0])
                with receiver.lock:
                    receiver.hits += 1
                    status = receiver.respond(got) if receiver.respond else receiver.status
                    if receiver.redirect_to:
                        status = 302
                    if 200 <= status < 300:
                        receiver.received.append(got)
                        if got.id in receiver.processed:
                            receiver.duplicates += 1
                        else:
                            receiver.processed[got.id] = got
                    drop = receiver.drop_ack is not None and 200 <= status < 300 and receiver.drop_ack(got)
                if drop:  # processed, but the answer is lost: the sender must retry, the consumer dedupe
                    self.close_connection = True
                    return
                self.send_response(status)
                if receiver.redirect_to:
                    self.send_header("location", receiver.redirect_to)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        return Handler

    def start(self) -> None:
        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), self._handler())
        self.port = self.server.server_address[1]
        if self.tls is not None:
            self.tls.sni_callback = lambda sock, name, ctx: self.sni.append(name)  # type: ignore[assignment]
            self.server.socket = self.tls.wrap_socket(self.server.socket, server_side=True)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}/hooks"

    def verified(self, secret: str) -> list[dict[str, Any]]:
        """Every received body, each verified with the standardwebhooks package (raises if one is not)."""
        wh = Webhook(secret)
        return [wh.verify(r.body, r.headers) for r in self.received]

    def of_type(self, type_: str) -> list[Received]:
        return [r for r in self.received if r.json["type"] == type_]

    def wait_for(self, predicate, timeout: float = 30.0) -> bool:  # type: ignore[no-untyped-def]
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if predicate(self):
                    return True
            time.sleep(0.05)
        return False

    def close(self) -> None:
        self.gate.set()
        self.stop()


class DripServer:
    """A receiver that answers one byte every `interval` seconds for `seconds` (each byte well within any
    per-read timeout): only a deadline on the whole exchange cuts it short."""

    def __init__(self, interval: float = 0.1, seconds: float = 8.0) -> None:
        self.interval, self.seconds = interval, seconds
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.connections = 0
        self.closed = threading.Event()
        threading.Thread(target=self._serve, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/slow"

    def _serve(self) -> None:
        while not self.closed.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._drip, args=(conn,), daemon=True).start()

    def _drip(self, conn: socket.socket) -> None:
        with conn:
            try:
                conn.recv(65536)
                answer = b"HTTP/1.1 200 OK\r\n" + b"X-Slow: " + b"." * 10_000
                deadline = time.monotonic() + self.seconds
                for byte in answer:
                    if time.monotonic() > deadline or self.closed.is_set():
                        break
                    conn.sendall(bytes([byte]))
                    time.sleep(self.interval)
                conn.sendall(b"\r\ncontent-length: 0\r\n\r\n")
            except OSError:
                pass

    def close(self) -> None:
        self.closed.set()
        self.sock.close()


def tls_material(tmp_path: Path, name: str) -> tuple[ssl.SSLContext, Path]:
    """A private CA and a server certificate for `name` signed by it: the server's SSL context, and the CA's
    PEM file (for COVERWATCH_WEBHOOK_CA_FILE)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.now(UTC)

    def cert(subject: str, key, issuer: str, issuer_key, ca: bool) -> x509.Certificate:  # type: ignore[no-untyped-def]
        builder = (x509.CertificateBuilder()
                   .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
                   .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
                   .public_key(key.public_key()).serial_number(x509.random_serial_number())
                   .not_valid_before(now - timedelta(hours=1)).not_valid_after(now + timedelta(days=1))
                   .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
        if ca:
            builder = builder.add_extension(x509.KeyUsage(
                digital_signature=True, key_cert_sign=True, crl_sign=True, content_commitment=False,
                key_encipherment=False, data_encipherment=False, key_agreement=False, encipher_only=False,
                decipher_only=False), critical=True)
        else:
            builder = builder.add_extension(x509.SubjectAlternativeName([x509.DNSName(subject)]), critical=False)
        return builder.sign(issuer_key, hashes.SHA256())

    ca_key, leaf_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_cert = cert("Coverwatch test CA", ca_key, "Coverwatch test CA", ca_key, ca=True)
    leaf = cert(name, leaf_key, "Coverwatch test CA", ca_key, ca=False)
    ca_file, chain, key_file = tmp_path / "ca.pem", tmp_path / f"{name}.pem", tmp_path / f"{name}.key"
    ca_file.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    chain.write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(leaf_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                serialization.NoEncryption()))
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(chain, key_file)
    return context, ca_file
