"""schemathesis from the command line against a live server finds nothing.

`st run openapi/openapi.json` against uvicorn (SQLite, the demo tenant's admin key), every check, all phases
(examples, coverage, fuzzing, stateful), a fixed seed and bounded examples: about a minute or two.
Settings the schema cannot carry are in `schemathesis.toml` (read from the repository root), each with its reason.

A deeper run, by hand, against `make run` (any seed, more examples):

    st run openapi/openapi.json --url http://127.0.0.1:8000 -H "Authorization: Bearer $KEY" \
        --checks all --max-examples 200 --workers 2
"""

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.helpers import free_port
from tests.test_readme import start_demo

ROOT = Path(__file__).resolve().parent.parent
SEED = "1"
MAX_EXAMPLES = os.environ.get("COVERWATCH_ST_MAX_EXAMPLES", "10")


@pytest.mark.slow
def test_schemathesis_finds_nothing(tmp_path: Path):
    st = shutil.which("st") or str(Path(os.sys.executable).parent / "st")
    assert Path(st).exists(), "schemathesis (a dev dependency) provides `st`"
    port = free_port()
    proc, key = start_demo(tmp_path, port)
    try:
        run = subprocess.run(
            [st, "run", "openapi/openapi.json", "--url", f"http://127.0.0.1:{port}",
             "-H", f"Authorization: Bearer {key}", "--checks", "all", "--seed", SEED,
             "--max-examples", MAX_EXAMPLES, "--workers", "1", "--generation-database", "none", "--no-color",
             "--phases", "examples,coverage,fuzzing,stateful"],
            cwd=ROOT, capture_output=True, text=True, timeout=900,
        )
    finally:
        proc.terminate()
        proc.wait(timeout=20)
    assert run.returncode == 0, run.stdout[-20000:] + run.stderr[-5000:]
    assert "Stateful" in run.stdout
