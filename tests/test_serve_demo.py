"""The README's run command: a live uvicorn with SQLite, demo data, a printed URL and key."""

import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_serve_demo_prints_a_url_and_a_working_key(tmp_path: Path):
    port = _free_port()
    env = {**os.environ, "COVERWATCH_DATABASE_URL": f"sqlite:///{tmp_path / 'demo.db'}",
           "COVERWATCH_SCHEDULER_ENABLED": "false"}
    proc = subprocess.Popen([sys.executable, "-m", "app.cli", "serve", "--demo", "--port", str(port)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        key, url, lines = None, None, []
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and (key is None or url is None):
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line)
            if m := re.search(r"Admin API key: (\S+)", line):
                key = m.group(1)
            if m := re.search(r"demo at (http://\S+)", line):
                url = m.group(1)
        assert key and url == f"http://127.0.0.1:{port}", "".join(lines)
        headers = {"Authorization": f"Bearer {key}"}
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{url}/readyz").status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.2)
        portfolio = httpx.get(f"{url}/v1/exposure", headers=headers).json()
        assert portfolio["buyers"] == 5
        assert portfolio["buyers_by_status"]["above_primary"] + portfolio["buyers_by_status"]["above_cover"] >= 1
        assert portfolio["errors"] == []
        garcia = httpx.get(f"{url}/v1/exposure/buyers/GARCIA", headers=headers).json()
        assert garcia["primary_limit"] == "20000.00"
    finally:
        proc.terminate()
        proc.wait(timeout=20)
