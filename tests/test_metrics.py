"""GET /metrics scraped and parsed as Prometheus does; the Grafana dashboard names only metrics we export."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from app.scheduling.scheduler import _guarded
from tests.helpers import buyer, domain_policies, invoice, limit, ok, payment

ROOT = Path(__file__).resolve().parent.parent
DASHBOARD = ROOT / "deploy" / "grafana" / "coverwatch-dashboard.json"


def scrape(client) -> dict[tuple[str, frozenset], float]:
    response = client.get("/metrics")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain; version=")
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(response.text) for s in family.samples}


def value(samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def test_requests_ingest_exposure_and_alerts(api, anon, tenant):
    before = scrape(anon)
    domain_policies(api)
    buyer(api, "B1")
    limit(api, "100000.00", "2026-01-01")
    invoice(api, "I1", "80000.00", "2026-02-10", "2026-04-11")
    invoice(api, "I2", "90000.00", "2026-03-01", "2026-04-30")
    invoice(api, "I2", "90000.00", "2026-03-01", "2026-04-30")  # unchanged: not stored again
    invoice(api, "CN1", "1000.00", "2026-03-02", "2026-03-02", kind="credit_note")
    payment(api, "PAY1", "9000.00")
    api.get("/v1/buyers/NOBODY")
    after = scrape(anon)

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    # Requests by route template, never by raw path.
    assert delta("coverwatch_http_requests_total", route="/v1/invoices/{invoice_ref}", method="PUT",
                 status="201") == 3
    assert delta("coverwatch_http_requests_total", route="/v1/invoices/{invoice_ref}", method="PUT",
                 status="200") == 1
    assert delta("coverwatch_http_requests_total", route="/v1/buyers/{buyer_ref}", method="GET", status="404") == 1
    assert delta("coverwatch_http_request_duration_seconds_count", route="/v1/invoices/{invoice_ref}",
                 method="PUT") == 4
    assert not any("/v1/invoices/I1" in dict(labels).get("route", "") for _, labels in after)
    # What was stored.
    assert (delta("coverwatch_ingested_total", kind="invoice"), delta("coverwatch_ingested_total", kind="credit_note"),
            delta("coverwatch_ingested_total", kind="payment"),
            delta("coverwatch_ingested_total", kind="limit_decision")) == (2, 1, 1, 1)
    # Exposure gauges of this tenant, from the stored rows: 170,000 less 1,000 credited and 9,000 paid.
    t = {"tenant": tenant.id, "currency": "EUR"}
    gauges = ("outstanding", "covered_primary", "covered_top_up", "uncovered", "buyers")
    assert [value(after, f"coverwatch_exposure_{g}", **t) for g in gauges] == [160000, 100000, 60000, 0, 1]
    assert value(after, "coverwatch_alerts_open", tenant=tenant.id, type="exposure_above_primary") == 1
    assert value(after, "coverwatch_stored_metrics_up") == 1
    # No per-buyer label anywhere.
    assert not any(k in ("buyer", "buyer_ref", "invoice_ref") for _, labels in after for k, _ in labels)


def test_a_key_can_be_required(anon, settings_override):
    settings_override(metrics_key="s3cret-scrape-key")
    assert anon.get("/metrics").status_code == 401
    assert anon.get("/metrics", headers={"Authorization": "Bearer nope"}).status_code == 401
    assert anon.get("/metrics", headers={"Authorization": "Bearer s3cret-scrape-key"}).status_code == 200


def test_webhook_and_job_metrics(api, anon, receiver, dispatch):
    before = scrape(anon)
    endpoint = ok(api.post("/v1/webhook-endpoints", json={"url": receiver.url}), 201)
    ok(api.post(f"/v1/webhook-endpoints/{endpoint['id']}/test"), 202)
    queued = scrape(anon)
    assert value(queued, "coverwatch_webhook_queue_depth") == value(before, "coverwatch_webhook_queue_depth") + 1
    dispatch()
    after = scrape(anon)
    assert value(after, "coverwatch_webhook_attempts_total", outcome="delivered") >= value(
        before, "coverwatch_webhook_attempts_total", outcome="delivered") + 1
    assert value(after, "coverwatch_webhook_latency_seconds_count") > value(before,
                                                                           "coverwatch_webhook_latency_seconds_count")
    assert value(after, "coverwatch_webhook_queue_depth") < value(queued, "coverwatch_webhook_queue_depth")

    def fails() -> None:
        raise RuntimeError("boom")

    _guarded(lambda: None, "test_job")()
    _guarded(fails, "test_job")()  # logged, not raised: the scheduler goes on
    jobs = scrape(anon)
    assert value(jobs, "coverwatch_job_runs_total", job="test_job") - value(
        before, "coverwatch_job_runs_total", job="test_job") == 2
    assert value(jobs, "coverwatch_job_failures_total", job="test_job") - value(
        before, "coverwatch_job_failures_total", job="test_job") == 1
    assert value(jobs, "coverwatch_job_last_success_timestamp_seconds", job="test_job") > 1.7e9
    assert value(jobs, "coverwatch_job_duration_seconds_count", job="test_job") >= 2


def exported_names(text: str) -> set[str]:
    names = set()
    for family in text_string_to_metric_families(text):
        names.add(family.name)
        names.update({"counter": [family.name + "_total"],
                      "histogram": [family.name + s for s in ("_bucket", "_sum", "_count")]}.get(family.type, []))
        names.update(s.name for s in family.samples)
    return names


def test_every_dashboard_expression_names_an_exported_metric(anon):
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["uid"] == "coverwatch" and dashboard["panels"]
    exported = exported_names(anon.get("/metrics").text)
    exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    assert len(exprs) >= 15
    for expr in exprs:
        used = re.findall(r"coverwatch_[a-z0-9_]+", expr)
        assert used, expr
        assert set(used) <= exported, (expr, set(used) - exported)
    # Every family the service exports is on the dashboard.
    on_dashboard = {re.sub(r"_(total|bucket|sum|count)$", "", n) for e in exprs for n in re.findall(
        r"coverwatch_[a-z0-9_]+", e)}
    families = {f.name for f in text_string_to_metric_families(anon.get("/metrics").text)
                if f.name.startswith("coverwatch_")}
    assert families - on_dashboard == set()
    scrape_config = yaml.safe_load((ROOT / "deploy" / "grafana" / "prometheus.yml").read_text())
    assert scrape_config["scrape_configs"][0]["metrics_path"] == "/metrics"


@pytest.mark.slow
def test_multiprocess_mode_adds_up_the_workers(tmp_path):
    """With PROMETHEUS_MULTIPROC_DIR set, the counters of two processes are added up at scrape."""
    script = textwrap.dedent(f"""
        import sys
        from fastapi.testclient import TestClient
        from app.core.config import Settings
        from app.main import create_app
        from app.migrate import upgrade
        url = "sqlite:///{tmp_path}/m.db"
        if sys.argv[1] == "migrate":
            upgrade(url)
        client = TestClient(create_app(Settings(database_url=url, scheduler_enabled=False)))
        client.get("/healthz")
        if sys.argv[1] == "scrape":
            print(client.get("/metrics").text)
    """)
    (tmp_path / "prometheus").mkdir()  # its own directory: the collector reads every *.db file there
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "prometheus")}
    for step in ("migrate", "scrape"):
        done = subprocess.run([sys.executable, "-c", script, step], env=env, capture_output=True, text=True,
                              cwd=ROOT, timeout=120)
        assert done.returncode == 0, done.stderr
    samples = {(s.name, frozenset(s.labels.items())): s.value
               for f in text_string_to_metric_families(done.stdout) for s in f.samples}
    assert samples[("coverwatch_http_requests_total",
                    frozenset({"route": "/healthz", "method": "GET", "status": "200"}.items()))] == 2
    assert samples[("coverwatch_stored_metrics_up", frozenset())] == 1
