"""The README's shell session runs as written against a live server (uvicorn, SQLite, the demo tenant)."""

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.helpers import free_port

ROOT = Path(__file__).resolve().parent.parent


def readme_session() -> str:
    """The fenced `sh` block that starts with `export KEY=`."""
    blocks = re.findall(r"```sh\n(.*?)```", (ROOT / "README.md").read_text(), flags=re.S)
    sessions = [b for b in blocks if b.startswith("export KEY=")]
    assert len(sessions) == 1, "the README has one quick session starting with `export KEY=`"
    return sessions[0]


def commands(session: str) -> list[str]:
    """The session's lines, continuation lines joined."""
    return session.replace("\\\n", " ").strip().splitlines()


def start_demo(tmp_path: Path, port: int) -> tuple[subprocess.Popen, str]:
    """`coverwatch serve --demo` on a port; its output goes to a file (a pipe nobody reads would fill and block it)."""
    env = {**os.environ, "COVERWATCH_DATABASE_URL": f"sqlite:///{tmp_path / 'demo.db'}",
           "COVERWATCH_SCHEDULER_ENABLED": "false", "COVERWATCH_TODAY": "2026-11-20", "COVERWATCH_LOG_LEVEL": "WARNING"}
    log = tmp_path / "server.log"
    with log.open("w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "app.cli", "serve", "--demo", "--port", str(port)], env=env,
                                stdout=out, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 180
    key = None
    while time.monotonic() < deadline and key is None and proc.poll() is None:
        if m := re.search(r"Admin API key: (\S+)", log.read_text()):
            key = m.group(1)
        else:
            time.sleep(0.2)
    assert key, f"the demo printed no key: {log.read_text()}"
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz").status_code == 200:
                break
        except httpx.TransportError:
            time.sleep(0.2)
    return proc, key


@pytest.mark.skipif(shutil.which("curl") is None or shutil.which("bash") is None, reason="needs bash and curl")
def test_the_readme_session_runs_as_written(tmp_path: Path):
    session = readme_session()
    lines = commands(session)
    assert lines[0].startswith("export KEY=cw_...")
    assert 'J="Content-Type: application/json"' in lines
    assert all('-H "$J"' in line for line in lines if line.startswith("curl") and " -d " in line)
    port = free_port()
    proc, key = start_demo(tmp_path, port)
    try:
        # The session as written; only the key and the port change. Each command's output on a line of its own.
        script = "\n".join(
            f"export KEY={key}" if line.startswith("export KEY=") else
            (line.replace("localhost:8000", f"localhost:{port}") + "; echo" if line.startswith("curl") else line)
            for line in lines
        )
        run = subprocess.run(["bash", "-euo", "pipefail", "-c", script], capture_output=True, text=True, timeout=60)
        assert run.returncode == 0, run.stderr
        outputs = [json.loads(line) for line in run.stdout.splitlines()]
    finally:
        proc.terminate()
        proc.wait(timeout=20)

    buyer, decision, invoice, check, exposure = outputs
    assert (buyer["buyer_ref"], buyer["name"], buyer["country"]) == ("LECLERC", "Leclerc SA", "FR")
    assert (decision["status"], decision["amount"], decision["policy_ref"]) == ("granted", "20000.00", "AT-WT-01")
    assert (invoice["invoice_ref"], invoice["amount"], invoice["open_balance"]) == ("FA 2026/001", "18000.00",
                                                                                    "18000.00")
    assert (check["decision"], check["covered_primary"], check["covered_top_up"], check["uncovered"]) == (
        "covered", "2000.00", "3000.00", "0.00")
    assert (exposure["outstanding"], exposure["covered_primary"], exposure["status"]) == ("18000.00", "18000.00", "ok")
    assert [i["invoice_ref"] for i in exposure["invoices"]] == ["FA 2026/001"]
