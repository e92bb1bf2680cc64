"""Prometheus metrics of alerting, read from the alert actor and the notifiers at scrape
time: alerts open, transitions recorded, and notifications by channel and outcome."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from sensorium.actors import IngestPipeline, Notifier

__all__ = ["AlertCollector"]


class AlertCollector(Collector):
    def __init__(self, pipeline: IngestPipeline, notifiers: list[Notifier]) -> None:
        self._pipeline = pipeline
        self._notifiers = notifiers

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        opened = GaugeMetricFamily(
            "sensorium_alerts_open",
            "Alerts not resolved (open or acknowledged), by severity, as of the last sweep.",
            labels=["severity"],
        )
        counts = self._pipeline.alerts.open_by_severity
        for severity in ("info", "warning", "critical"):
            opened.add_metric([severity], counts.get(severity, 0))
        yield opened
        yield CounterMetricFamily(
            "sensorium_alert_transitions_recorded",
            "Alert openings and resolutions recorded.",
            value=self._pipeline.alerts.recorded,
        )
        outcomes = CounterMetricFamily(
            "sensorium_notifications",
            "Notification deliveries ended, by channel and outcome (retry: tried again later).",
            labels=["channel", "outcome"],
        )
        digests = CounterMetricFamily(
            "sensorium_notification_digests",
            "Digests made (several notifications due for one recipient, sent as one).",
            labels=["channel"],
        )
        for notifier in self._notifiers:
            for outcome, count in (
                ("sent", notifier.sent),
                ("failed", notifier.failed),
                ("retry", notifier.retried),
            ):
                outcomes.add_metric([notifier.channel, outcome], count)
            digests.add_metric([notifier.channel], notifier.digests)
        yield outcomes
        yield digests
