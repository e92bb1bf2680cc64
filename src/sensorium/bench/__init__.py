"""Benchmark suites, their baselines, and the device simulator they drive."""

from sensorium.bench._loadgen import (
    DeviceCredentials,
    LoadResult,
    expected_sum,
    message_payload,
    run_http_load,
    run_mqtt_load,
)
from sensorium.bench._provision import provision_devices, wait_for_broker_login

__all__ = [
    "DeviceCredentials",
    "LoadResult",
    "expected_sum",
    "message_payload",
    "provision_devices",
    "run_http_load",
    "run_mqtt_load",
    "wait_for_broker_login",
]
