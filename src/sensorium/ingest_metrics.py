"""Prometheus metrics of the ingest path, read from each part's `statistics()` at scrape
time (nothing is counted twice, and the hot path pays nothing for metrics)."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector

from sensorium.actors import IngestPipeline
from sensorium.engine import Distribution
from sensorium.sources import MqttSource

__all__ = ["IngestCollector", "histogram"]


def histogram(name: str, documentation: str, distribution: Distribution) -> HistogramMetricFamily:
    """A Prometheus histogram of what ``distribution`` observed."""
    return HistogramMetricFamily(
        name, documentation, buckets=distribution.cumulative(), sum_value=distribution.sum
    )


class IngestCollector(Collector):
    def __init__(self, pipeline: IngestPipeline, mqtt: MqttSource | None) -> None:
        self._pipeline = pipeline
        self._mqtt = mqtt

    def collect(
        self,
    ) -> Iterator[CounterMetricFamily | GaugeMetricFamily | HistogramMetricFamily]:
        writer = self._pipeline.writer.statistics()
        actors = self._pipeline.registry.statistics()
        router = self._pipeline.router
        yield CounterMetricFamily(
            "sensorium_readings_written", "Readings committed.", value=writer.readings
        )
        yield CounterMetricFamily(
            "sensorium_writer_batches", "Batches committed.", value=writer.batches
        )
        yield CounterMetricFamily(
            "sensorium_writer_retries", "Batch writes retried.", value=writer.retries
        )
        yield CounterMetricFamily(
            "sensorium_dead_letters_written", "Dead letters committed.", value=writer.dead_letters
        )
        yield GaugeMetricFamily(
            "sensorium_writer_queue_depth", "Write requests queued.", value=writer.queued
        )
        yield GaugeMetricFamily(
            "sensorium_writer_oldest_unwritten_seconds",
            "Age of the batch being written.",
            value=writer.oldest_unwritten_age_s,
        )
        yield histogram(
            "sensorium_writer_batch_rows", "Readings per committed batch.", writer.batch_rows
        )
        yield histogram(
            "sensorium_writer_commit_seconds",
            "Seconds to write and commit a batch (COPY, rollups, marks), retries included.",
            writer.commit_s,
        )
        yield GaugeMetricFamily(
            "sensorium_writer_last_batch_rows",
            "Rows of the last batch.",
            value=writer.last_batch_rows,
        )
        yield GaugeMetricFamily(
            "sensorium_writer_last_commit_seconds",
            "Duration of the last batch write.",
            value=writer.last_commit_s,
        )
        yield GaugeMetricFamily(
            "sensorium_actors_live", "Device actors running.", value=actors.live
        )
        yield GaugeMetricFamily(
            "sensorium_actors_passivated", "Device actors passivated.", value=actors.passivated
        )
        yield GaugeMetricFamily(
            "sensorium_mailbox_queued", "Messages in device mailboxes.", value=actors.queued
        )
        yield CounterMetricFamily(
            "sensorium_actor_restarts", "Device actor restarts.", value=actors.restarts
        )
        rejected = CounterMetricFamily(
            "sensorium_ingest_rejected", "Rejected input by reason.", labels=["reason"]
        )
        for reason, count in sorted(router.rejections.items()):
            rejected.add_metric([reason], count)
        yield rejected
        accepted = CounterMetricFamily(
            "sensorium_ingest_messages",
            "Messages routed to device actors, by source.",
            labels=["source"],
        )
        for source, count in sorted(router.accepted_messages.items()):
            accepted.add_metric([source], count)
        yield accepted
        if self._mqtt is not None:
            mqtt = self._mqtt.statistics()
            yield CounterMetricFamily(
                "sensorium_mqtt_received", "MQTT messages read.", value=mqtt.received
            )
            yield CounterMetricFamily(
                "sensorium_mqtt_acknowledged", "PUBACKs sent.", value=mqtt.acknowledged
            )
            yield GaugeMetricFamily(
                "sensorium_mqtt_inflight",
                "MQTT messages read and not yet committed.",
                value=mqtt.inflight,
            )
            yield GaugeMetricFamily(
                "sensorium_mqtt_connected", "1 while subscribed.", value=int(mqtt.connected)
            )
