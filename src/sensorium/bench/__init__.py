"""Benchmark suites, their baselines, and the device simulator they drive."""

from sensorium.bench._actors_memory import measure_actor_memory
from sensorium.bench._ingest import IngestBenchOptions, run_ingest_bench
from sensorium.bench._loadgen import (
    DeviceCredentials,
    LoadResult,
    expected_sum,
    message_payload,
    run_http_load,
    run_mqtt_load,
)
from sensorium.bench._plot import write_plot
from sensorium.bench._provision import provision_devices, simulate_forever, wait_for_broker_login
from sensorium.bench._report import print_report
from sensorium.bench._scale import FULL_SCALE, ScaleOptions, run_scale_bench
from sensorium.bench._suites import SuiteOptions, run_suite
from sensorium.bench._writer_suite import run_writer_bench

__all__ = [
    "FULL_SCALE",
    "DeviceCredentials",
    "IngestBenchOptions",
    "LoadResult",
    "ScaleOptions",
    "SuiteOptions",
    "expected_sum",
    "measure_actor_memory",
    "message_payload",
    "print_report",
    "provision_devices",
    "run_http_load",
    "run_ingest_bench",
    "run_mqtt_load",
    "run_scale_bench",
    "run_suite",
    "run_writer_bench",
    "simulate_forever",
    "wait_for_broker_login",
    "write_plot",
]
