"""deploy/prometheus: Prometheus's own tool accepts the scrape config and the alert
rules, every alert fires on a series that should trigger it (promtool's rule unit
tests, rules_test.yml), and every metric the rules name is one a running stack
exports."""

from __future__ import annotations

import json
import re
import subprocess
import time
from pathlib import Path

import httpx

from tests.support import StackHandle

DEPLOY = Path(__file__).resolve().parents[2] / "deploy" / "prometheus"


def _promtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["promtool", *args], cwd=DEPLOY, capture_output=True, text=True, timeout=60, check=False
    )


def _exported(stack: StackHandle) -> set[str]:
    """The names of the samples a running stack's /metrics serves. Families by label
    (rejections by reason, messages by source) have samples once something happened:
    one reading and one malformed payload go in first."""
    device = stack.create_device("metrics-probe")
    for body in (b'{"ts": %d, "metrics": {"temperature": 1.5}}' % (time.time() * 1000), b"{"):
        httpx.post(
            f"{stack.http_url}/api/v1/telemetry",
            headers={"Authorization": f"Bearer {device['token']}",
                     "Content-Type": "application/json"},
            content=body, timeout=30,
        )  # fmt: skip
    return {
        line.split("{")[0].split(" ")[0]
        for line in httpx.get(f"{stack.http_url}/metrics", timeout=10).text.splitlines()
        if line and not line.startswith("#")
    }


def test_promtool_accepts_the_scrape_config_and_the_rules() -> None:
    config = _promtool("check", "config", "prometheus.yml")
    assert config.returncode == 0, config.stdout + config.stderr
    assert "SUCCESS" in config.stdout + config.stderr
    rules = _promtool("check", "rules", "rules.yml")
    assert rules.returncode == 0, rules.stdout + rules.stderr
    assert "SUCCESS: 8 rules found" in rules.stdout + rules.stderr


def test_every_alert_fires_on_its_series_and_not_on_a_healthy_one() -> None:
    result = _promtool("test", "rules", "rules_test.yml")
    assert result.returncode == 0, result.stdout + result.stderr
    tested = set(re.findall(r"alertname: (\w+)", (DEPLOY / "rules_test.yml").read_text()))
    alerts = set(re.findall(r"- alert: (\w+)", (DEPLOY / "rules.yml").read_text()))
    assert tested == alerts  # no rule without its test


def test_every_metric_the_rules_name_is_exported_by_a_running_stack(
    stack: StackHandle,
) -> None:
    named = set(re.findall(r"\bsensorium_[a-z_]+", (DEPLOY / "rules.yml").read_text()))
    assert len(named) >= 8
    exported = _exported(stack)
    assert named - exported == set()


def test_every_query_of_the_grafana_dashboard_names_an_exported_metric(
    stack: StackHandle,
) -> None:
    dashboard = json.loads((DEPLOY.parent / "grafana" / "sensorium.json").read_text())
    exprs = [t["expr"] for panel in dashboard["panels"] for t in panel["targets"]]
    assert len(exprs) == len(dashboard["panels"]) >= 20
    named = {
        name for expr in exprs for name in re.findall(r"\b((?:sensorium|process)_[a-z_]+)\b", expr)
    }
    exported = _exported(stack)
    assert named - exported == set()
    assert all(named & set(re.findall(r"\w+", expr)) for expr in exprs)  # each names one


def test_batches_requests_and_alerts_are_measured_without_unbounded_labels(
    stack: StackHandle,
) -> None:
    device = stack.create_device("histogram-probe")
    token = httpx.post(
        f"{stack.http_url}/api/v1/auth/login",
        json={"email": "admin@example.com", "password": "correct horse battery staple"},
    ).json()["access_token"]
    latest = f"{stack.http_url}/api/v1/devices/{device['id']}/latest"
    _exported(stack)  # a reading and a malformed payload go in
    assert httpx.get(latest, headers={"Authorization": f"Bearer {token}"}).status_code == 200
    text = httpx.get(f"{stack.http_url}/metrics", timeout=10).text

    def value(sample: str) -> float:
        found = re.search(rf"^{re.escape(sample)} ([0-9.e+]+)$", text, re.MULTILINE)
        assert found, sample
        return float(found.group(1))

    assert value('sensorium_writer_batch_rows_bucket{le="+Inf"}') >= 1
    assert value("sensorium_writer_batch_rows_count") == value(
        'sensorium_writer_batch_rows_bucket{le="+Inf"}'
    )
    assert value("sensorium_writer_commit_seconds_count") >= 1
    assert value("sensorium_writer_commit_seconds_sum") > 0
    route = 'method="POST",route="/api/v1/telemetry"'
    assert value(f"sensorium_http_request_seconds_count{{{route}}}") >= 2
    latest_route = 'method="GET",route="/api/v1/devices/<device_id>/latest"'
    assert value(f"sensorium_http_request_seconds_count{{{latest_route}}}") >= 1
    assert device["id"] not in text  # labels name routes, never a device
    assert value('sensorium_alerts_open{severity="critical"}') >= 0
