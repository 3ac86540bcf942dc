"""Browser tests of the console: the app under uvicorn on 127.0.0.1, driven by Debian's Chromium through
Playwright (no browser download). Every request the page makes is recorded; anything not for 127.0.0.1 is
refused and fails the test."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from tests.conftest import fresh_postgres_schema
from tests.helpers import free_port

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"



@dataclass
class Server:
    url: str
    proc: subprocess.Popen
    output: list[str] = field(default_factory=list)
    key: str | None = None
    database_url: str | None = None

    def client(self, key: str | None = None) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers={"Authorization": f"Bearer {key or self.key}"}, timeout=30)

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def start_server(args: list[str], env: dict[str, str], wait_for: str | None = None, timeout: float = 240) -> Server:
    """Start `python -m <args>` and wait until /readyz answers (and, if given, a line matching `wait_for`)."""
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", *[a.replace("{port}", str(port)) for a in args]],
                            env={**os.environ, **env}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    server = Server(f"http://127.0.0.1:{port}", proc)
    deadline = time.monotonic() + timeout
    if wait_for is not None:
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            server.output.append(line)
            if m := re.search(wait_for, line):
                server.key = m.group(1)
                break
        assert server.key, "".join(server.output)
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{server.url}/readyz").status_code == 200:
                return server
        except httpx.TransportError:
            pass
        if proc.poll() is not None:
            break
        time.sleep(0.2)
    server.stop()
    raise AssertionError(f"server did not start: {''.join(server.output)}{proc.stdout.read() if proc.stdout else ''}")


def postgres_url() -> str:
    return fresh_postgres_schema("cw_console")


@pytest.fixture(scope="session")
def browser() -> Iterator[object]:
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: apt-get install -y chromium (.ci/run does it)")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield b
        b.close()


class Recorder:
    """Every request a page makes; requests for another host are aborted and kept as offences."""

    def __init__(self) -> None:
        self.requests: list[str] = []
        self.foreign: list[str] = []
        self.statuses: list[tuple[str, int]] = []

    def attach(self, context) -> None:  # type: ignore[no-untyped-def]
        def route(r) -> None:  # type: ignore[no-untyped-def]
            url = r.request.url
            self.requests.append(url)
            host = urlsplit(url).hostname
            if url.startswith(("data:", "blob:")) or host == "127.0.0.1":
                r.continue_()
            else:
                self.foreign.append(url)
                r.abort()

        context.route("**/*", route)
        context.on("response", lambda resp: self.statuses.append((resp.url, resp.status)))

    def assert_local_only(self) -> None:
        assert self.requests, "the page made no request at all"
        assert self.foreign == [], f"requests left 127.0.0.1: {self.foreign}"


def parse_money(shown: str) -> Decimal:
    """A figure as the console shows it in the fr-FR locale ("1 234 567,89 €") back to a Decimal."""
    cleaned = re.sub(r"[^\d,\-]", "", shown.replace("\u2212", "-"))
    assert cleaned, f"not an amount: {shown!r}"
    return Decimal(cleaned.replace(",", "."))
