"""Gauges read from the stored rows when Prometheus scrapes: exposure per tenant, open alerts by type, the
webhook queue. Computed here, not kept in the processes, so every worker answers the same."""

from __future__ import annotations

import logging
from collections.abc import Iterator

from prometheus_client.core import GaugeMetricFamily, Metric

from app.core.db import Database
from app.metrics import repository as repo

log = logging.getLogger("coverwatch.metrics")


class StoredCollector:
    def __init__(self, db: Database) -> None:
        self.db = db

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily("coverwatch_stored_metrics_up", "1 when the database answered the scrape's queries")
        try:
            with self.db.session() as session:
                exposure = repo.exposure_by_tenant(session)
                alerts = repo.open_alerts(session)
                queue = repo.webhook_queue(session)
        except Exception:  # a scrape must answer; the failure is the metric
            log.exception("metrics: the stored gauges could not be read")
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        buyers = GaugeMetricFamily("coverwatch_exposure_buyers", "Buyers with stored exposure",
                                   labels=["tenant", "currency"])
        families = {
            f: GaugeMetricFamily(f"coverwatch_exposure_{f}", f"Exposure {f.replace('_', ' ')}, by tenant",
                                 labels=["tenant", "currency"])
            for f in repo.EXPOSURE_FIELDS
        }
        for tenant, currency, count, *sums in exposure:
            buyers.add_metric([tenant, currency], count)
            for f, amount in zip(repo.EXPOSURE_FIELDS, sums, strict=True):
                families[f].add_metric([tenant, currency], float(amount or 0))
        yield buyers
        yield from families.values()
        open_alerts = GaugeMetricFamily("coverwatch_alerts_open", "Alerts not resolved, by type",
                                        labels=["tenant", "type"])
        for tenant, type_, count in alerts:
            open_alerts.add_metric([tenant, type_], count)
        yield open_alerts
        yield GaugeMetricFamily("coverwatch_webhook_queue_depth", "Webhook deliveries waiting to be sent",
                                value=queue)
