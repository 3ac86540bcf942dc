"""Fuzzing every operation of the OpenAPI document with schemathesis strategies: valid and invalid inputs
alike, no request gets a 500, and every error is a problem+json body."""

from __future__ import annotations

import os

import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.core.errors import PROBLEM_JSON

EXAMPLES = int(os.environ.get("COVERWATCH_FUZZ_EXAMPLES", "600"))  # a deeper run: 5000
MODES = [schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE]


def test_no_request_gets_a_server_error(app, tenant):  # type: ignore[no-untyped-def]
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) > 40
    strategy = st.one_of(*(op.as_strategy(generation_mode=mode) for op in operations for mode in MODES))
    headers = {"Authorization": f"Bearer {tenant.key}"}
    seen: set[str] = set()

    @given(case=strategy)
    @settings(max_examples=EXAMPLES, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
    def check(case):  # type: ignore[no-untyped-def]
        seen.add(f"{case.method} {case.path}")
        response = case.call(headers=headers)
        where = f"{case.method} {case.formatted_path}"
        assert response.status_code < 500, f"{where}: {response.status_code} {response.text}"
        if response.status_code >= 400 and response.status_code != 405:
            content_type = response.headers["content-type"]  # schemathesis gives each header as a list
            assert PROBLEM_JSON in content_type, f"{where}: {response.text}"

    check()
    assert len(seen) > len(operations) // 2  # the examples reach most operations
