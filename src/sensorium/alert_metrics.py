"""Prometheus metrics of alerting, read from the alert actor and the notifiers at scrape
time: transitions recorded, and notifications by channel and outcome."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector

from sensorium.actors import IngestPipeline, Notifier

__all__ = ["AlertCollector"]


class AlertCollector(Collector):
    def __init__(self, pipeline: IngestPipeline, notifiers: list[Notifier]) -> None:
        self._pipeline = pipeline
        self._notifiers = notifiers

    def collect(self) -> Iterator[CounterMetricFamily]:
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
