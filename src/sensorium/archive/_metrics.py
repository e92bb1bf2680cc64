"""Prometheus metrics of the archive job, read from its statistics at scrape time."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from sensorium.archive._archiver import ArchiveStatistics

__all__ = ["ArchiveCollector"]


class ArchiveCollector(Collector):
    def __init__(self, statistics: ArchiveStatistics) -> None:
        self._stats = statistics

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        stats = self._stats
        yield CounterMetricFamily("sensorium_archive_runs", "Archive job runs.", value=stats.runs)
        days = CounterMetricFamily(
            "sensorium_archive_days", "Days the archive job handled, by outcome.",
            labels=["outcome"],
        )  # fmt: skip
        days.add_metric(["archived"], stats.days_archived)
        days.add_metric(["failed"], stats.days_failed)
        yield days
        yield CounterMetricFamily(
            "sensorium_archive_readings",
            "Readings exported, verified and dropped from PostgreSQL.",
            value=stats.readings_archived,
        )
        yield GaugeMetricFamily(
            "sensorium_archive_last_success_timestamp_seconds",
            "When an archive run last ended with no day failed (0: never).",
            value=stats.last_success_unix,
        )
