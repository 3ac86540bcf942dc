"""The README's run command: a live uvicorn with SQLite, the demo book, a printed URL and key; run again, it
reuses the demo tenant and prints the same key."""

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.helpers import free_port


def _serve(db: Path, *extra: str) -> tuple[subprocess.Popen, str, str, float]:
    port = free_port()
    env = {**os.environ, "COVERWATCH_DATABASE_URL": f"sqlite:///{db}", "COVERWATCH_SCHEDULER_ENABLED": "false"}
    started = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-m", "app.cli", "serve", "--demo", "--port", str(port), *extra],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    key, url, lines = None, None, []
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline and (key is None or url is None):
        line = proc.stdout.readline()
        if not line:
            break
        lines.append(line)
        if m := re.search(r"Admin API key: (\S+)", line):
            key = m.group(1)
        if m := re.search(r"demo at (http://\S+)", line):
            url = m.group(1)
    seeded_in = time.monotonic() - started
    assert key and url == f"http://127.0.0.1:{port}", "".join(lines)
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/readyz").status_code == 200:
                break
        except httpx.TransportError:
            time.sleep(0.2)
    return proc, url, key, seeded_in


def _stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    proc.wait(timeout=20)


def test_serve_demo_prints_a_url_and_a_working_key_and_keeps_it(tmp_path: Path):
    db = tmp_path / "demo.db"
    proc, url, key, _ = _serve(db)
    try:
        headers = {"Authorization": f"Bearer {key}"}
        portfolio = httpx.get(f"{url}/v1/exposure", headers=headers).json()
        assert 250 <= portfolio["buyers"] <= 350
        by_status = portfolio["buyers_by_status"]
        assert all(by_status[s] > 0 for s in ("ok", "above_primary", "above_cover", "no_cover")), by_status
        assert portfolio["errors"] == []
        countries = httpx.get(f"{url}/v1/exposure/countries", headers=headers).json()
        assert len(countries) == 12
        assert any(c["above_limit"] for c in countries)
        types = {a["type"] for a in httpx.get(f"{url}/v1/alerts?limit=1000", headers=headers).json()["items"]}
        assert {"exposure_above_primary", "exposure_above_cover", "utilisation_high", "no_cover",
                "country_above_limit", "claim_deadline_near", "claim_deadline_missed", "stop_of_cover",
                "limit_expiring", "limit_reduced_below_exposure"} <= types
        history = httpx.get(f"{url}/v1/exposure/history?days=90", headers=headers).json()
        assert len(history) == 90
        assert httpx.get(f"{url}/", headers={}).status_code == 200
        key_file = Path(f"{db}.demo-key")
        assert key_file.read_text().strip() == key
        assert key_file.stat().st_mode & 0o777 == 0o600
    finally:
        _stop(proc)
    proc, url, again, seeded_in = _serve(db)
    try:
        assert again == key
        assert seeded_in < 30
        assert httpx.get(f"{url}/v1/exposure", headers={"Authorization": f"Bearer {key}"}).json()["buyers"] == \
            portfolio["buyers"]
    finally:
        _stop(proc)
    proc, url, rotated, _ = _serve(db, "--rotate-key")
    try:
        assert rotated != key
        assert httpx.get(f"{url}/v1/exposure", headers={"Authorization": f"Bearer {key}"}).status_code == 401
        assert httpx.get(f"{url}/v1/exposure", headers={"Authorization": f"Bearer {rotated}"}).status_code == 200
    finally:
        _stop(proc)
