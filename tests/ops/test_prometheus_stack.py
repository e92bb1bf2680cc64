"""`sensorium up --with-prometheus`: a real Prometheus (Debian's package) scrapes the
stack's /metrics and evaluates deploy/prometheus/rules.yml; a notification refused for
good makes SensoriumNotificationsFailing fire."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from sensorium.bench._stack import free_ports
from tests.support import StackHandle, wait_for
from tests.webhook_receiver import running_receiver

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def watched() -> Iterator[tuple[StackHandle, str]]:
    [port] = free_ports(1)
    handle = StackHandle.create(
        extra_env={
            "SENSORIUM_STACK__PROMETHEUS_PORT": str(port),
            "SENSORIUM_STACK__PROMETHEUS_SCRAPE_S": "1",
        }
    )
    try:
        handle.up("--with-prometheus")
        yield handle, f"http://127.0.0.1:{port}"
    finally:
        handle.down("--purge")


def _prometheus(url: str, path: str, **params: str) -> Any:
    answer = httpx.get(f"{url}/api/v1/{path}", params=params, timeout=10)
    assert answer.status_code == 200, answer.text
    return answer.json()["data"]


def test_prometheus_scrapes_the_stack_and_a_rule_fires(watched: tuple[StackHandle, str]) -> None:
    stack, prometheus = watched
    component = stack.component("prometheus")
    assert component["healthy"] and component["url"] == prometheus

    def scraped() -> bool:
        targets = _prometheus(prometheus, "targets")["activeTargets"]
        return bool(targets) and targets[0]["health"] == "up"

    wait_for(scraped, timeout=60)
    [target] = _prometheus(prometheus, "targets")["activeTargets"]
    assert target["scrapeUrl"] == f"{stack.http_url}/metrics"
    rules = {r["name"] for g in _prometheus(prometheus, "rules")["groups"] for r in g["rules"]}
    assert "SensoriumNotificationsFailing" in rules and len(rules) == 8

    # A webhook that is gone (410): the notification fails for good.
    device = stack.create_device("watched-freezer")
    with running_receiver() as gone:
        gone.answers = [(410, {})]
        rule = {"name": "to a gone hook", "scope": {"device_id": device["id"]},
                "metric": "temperature", "condition": {"op": ">", "threshold": 0},
                "channels": [{"type": "webhook", "url": gone.url, "secret": "s" * 20}]}  # fmt: skip
        stack.cli("rule", "create", json.dumps(rule))
        time.sleep(2.5)  # the engine's rule book picks it up
        answer = httpx.post(
            f"{stack.http_url}/api/v1/telemetry",
            headers={"Authorization": f"Bearer {device['token']}"},
            json={"ts": int(time.time() * 1000), "metrics": {"temperature": 4.0}},
            timeout=30,
        )
        assert answer.status_code == 200, answer.text
        wait_for(lambda: len(gone.requests) == 1, timeout=30)

    def firing() -> list[dict[str, Any]]:
        return [
            a for a in _prometheus(prometheus, "alerts")["alerts"]
            if a["labels"]["alertname"] == "SensoriumNotificationsFailing"
            and a["state"] == "firing"
        ]  # fmt: skip

    [alert] = wait_for(firing, timeout=60)
    assert alert["labels"]["channel"] == "webhook" and alert["labels"]["outcome"] == "failed"
    failed = _prometheus(
        prometheus, "query", query='sensorium_notifications_total{outcome="failed"}'
    )["result"]
    assert [float(r["value"][1]) for r in failed if r["metric"]["channel"] == "webhook"] == [1.0]
