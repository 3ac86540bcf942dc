"""The app under uvicorn in a subprocess on 127.0.0.1, started, killed (SIGKILL) and restarted by a test."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

import httpx

from tests.helpers import TEST_SECRET_KEY, free_port

ROOT = Path(__file__).resolve().parents[2]



class Server:
    """`uvicorn app.main:create_app` on a migrated database; several workers, or one process to kill."""

    def __init__(self, database_url: str, today: date, *, workers: int = 1, log: Path | None = None,
                 env: dict[str, str] | None = None) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.workers = workers
        self.log = log
        self.env = {**os.environ, "COVERWATCH_DATABASE_URL": database_url, "COVERWATCH_TODAY": today.isoformat(),
                    "COVERWATCH_SCHEDULER_ENABLED": "false", "COVERWATCH_SECRET_KEY": TEST_SECRET_KEY,
                    "COVERWATCH_LOG_LEVEL": "WARNING"}
        self.env.pop("PROMETHEUS_MULTIPROC_DIR", None)
        self.env.update(env or {})
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self, ready_within: float = 60) -> None:
        command = [sys.executable, "-m", "uvicorn", "app.main:create_app", "--factory", "--host", "127.0.0.1",
                   "--port", str(self.port), "--log-level", "warning", "--no-access-log"]
        if self.workers > 1:
            command += ["--workers", str(self.workers)]
        out = open(self.log, "ab") if self.log else subprocess.DEVNULL  # noqa: SIM115 (closed with the process)
        # A process group of its own: a kill reaches the workers too.
        self.proc = subprocess.Popen(command, cwd=ROOT, env=self.env, stdout=out, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        self.starts += 1
        deadline = time.monotonic() + ready_within
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, f"uvicorn exited with {self.proc.returncode} (log: {self.log})"
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        raise AssertionError(f"uvicorn not ready within {ready_within} s (log: {self.log})")

    def kill(self) -> None:
        """SIGKILL, the whole process group: no shutdown, no rollback, sockets cut mid-request."""
        assert self.proc is not None
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=30)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=30)
