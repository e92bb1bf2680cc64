"""Prometheus metrics of the read replicas, from the read router's own checks (one a
second): how far each replica is behind the primary, and whether it serves reads."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from sensorium.storage import ReadPools

__all__ = ["ReplicaCollector"]


class ReplicaCollector(Collector):
    def __init__(self, reads: ReadPools) -> None:
        self._reads = reads

    def collect(self) -> Iterator[GaugeMetricFamily]:
        lag = GaugeMetricFamily(
            "sensorium_replica_lag_seconds",
            "How far a replica's replay is behind the primary (0 when caught up).",
            labels=["replica"],
        )
        up = GaugeMetricFamily(
            "sensorium_replica_up",
            "1 while a replica answers as a standby and may serve reads.",
            labels=["replica"],
        )
        for replica in self._reads.replicas:
            lag.add_metric([replica.name], replica.staleness_s)
            up.add_metric([replica.name], float(replica.healthy))
        yield lag
        yield up
