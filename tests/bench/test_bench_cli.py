"""The bench suites run end to end (tiny sizes: the figures themselves are for
BENCHMARKS.md, never asserted here)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.support import SENSORIUM

pytestmark = pytest.mark.slow


def _bench(tmp_path: Path, *args: str) -> tuple[subprocess.CompletedProcess[str], Any]:
    """Run `sensorium bench ...`, check it succeeded, return it and its JSON report."""
    report_file = tmp_path / "report.json"
    result = subprocess.run(
        [*SENSORIUM, "bench", *args, "--json", str(report_file)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result, json.loads(report_file.read_text())


@pytest.mark.parametrize("transport", ["mqtt", "http"])
def test_bench_ingest_reports_every_figure_beside_its_baselines(
    tmp_path: Path, transport: str
) -> None:
    result, report = _bench(
        tmp_path,
        "ingest",
        "--transport",
        transport,
        "--devices",
        "20",
        "--messages",
        "5",
        "--actors",
        "200",
        "--plot",
        str(tmp_path / "ingest.png"),
    )
    assert (tmp_path / "ingest.png").read_bytes().startswith(b"\x89PNG\r\n")
    engine = report["engine"]
    assert engine["readings_stored"] == engine["readings_expected"] == 20 * 5 * 3
    expected_baselines = {"psql_copy", "asyncpg_copy", "asyncpg_copy_batched", "naive_insert"}
    if transport == "mqtt":
        expected_baselines |= {"broker_only", "paho_copy"}
        # The afternoon script stored every reading too (it is measured on them all).
        assert report["baselines"]["paho_copy"]["rows"] == 20 * 5 * 3
    assert set(report["baselines"]) == expected_baselines
    for name, baseline in report["baselines"].items():
        assert baseline["rows_per_s"] > 0, name
    for ratio in report["ratios"].values():
        assert ratio > 0
    assert set(engine["cpu_seconds"]) == {
        "engine",
        "postgresql_primary",
        "postgresql_replicas",
        "broker",
        "load_generator",
    }
    assert report["machine"]["cores"] >= 1
    assert "PostgreSQL" in report["machine"]["postgresql"]
    # The timeline ends with every reading published and committed.
    last = engine["timeline"][-1]
    assert last[1] == last[2] == 20 * 5 * 3
    assert engine["latency_samples_s"] and min(engine["latency_samples_s"]) >= 0
    assert report["actors"]["actors"] == 200
    assert "engine end to end" in result.stdout


def test_bench_alerts_times_alert_emails_beside_a_direct_send(tmp_path: Path) -> None:
    result, report = _bench(
        tmp_path, "alerts", "--devices", "40", "--messages", "5", "--probes", "4",
        "--probe-seconds", "3",
    )  # fmt: skip
    # Every alert email (4 probes: opened and resolved) arrived and was matched.
    assert report["alert_emails_expected"] == report["alert_emails_matched"] == 8
    alert = report["publish_to_smtp"]
    assert 0 < alert["p50_ms"] <= alert["p99_ms"] <= alert["max_ms"]
    assert report["direct_smtp"]["samples"] == 50 and report["direct_smtp"]["p50_ms"] > 0
    for run in ("ingest_max", "ingest_with_rules", "ingest_max_again"):
        assert report[run]["readings_committed"] == 40 * 5 * 3, run
    assert report["rules_cost_ratio"] > 0 and report["half_rate_messages_per_s"] > 0
    assert report["goal"]["met"] == (alert["p99_ms"] < 1000)
    assert "SMTP receipt" in result.stdout


def test_bench_archive_compares_ingest_with_and_without_dropping_an_old_day(
    tmp_path: Path,
) -> None:
    result, report = _bench(tmp_path, "archive", "--devices", "20", "--messages", "5")
    runs = report["runs"]
    assert set(runs) == {"undisturbed", "while dropping the old day"}
    for run in runs.values():
        assert run["readings_committed"] == 20 * 5 * 3
        assert run["latency_s"]["p99"] >= run["latency_s"]["p50"] > 0
        assert run["latency_max_s"] >= run["latency_s"]["p99"]
    assert report["detach_and_drop_s"] > 0  # it did happen
    assert "longest stall" in result.stdout


def test_bench_writer_reports_the_writer_beside_asyncpg(tmp_path: Path) -> None:
    result, report = _bench(
        tmp_path,
        "writer",
        "--devices", "50", "--messages", "10", "--rounds", "2",
        "--plot", str(tmp_path / "w.png"),
    )  # fmt: skip
    assert (tmp_path / "w.png").read_bytes().startswith(b"\x89PNG\r\n")
    assert report["writer_alone"]["rows"] == 50 * 10 * 3
    assert report["options"]["rounds"] == 2
    assert len(report["writer_alone"]["runs"]) == 2
    assert set(report["baselines"]) == {"asyncpg_copy", "asyncpg_copy_batched"}
    assert all(len(base["runs"]) == 2 for base in report["baselines"].values())
    assert all(ratio > 0 for ratio in report["ratios"].values())
    per_round = report["per_round_vs_asyncpg_copy"]
    assert len(per_round) == 2 and all(ratio > 0 for ratio in per_round)
    assert "the engine's writer" in result.stdout
    assert "round by round: " + " / ".join(f"{r:.2f}" for r in per_round) in result.stdout


def test_bench_scale_draws_curves_over_devices_metrics_and_actors(tmp_path: Path) -> None:
    result, report = _bench(
        tmp_path,
        "scale",
        "--scale-devices",
        "10,30",
        "--scale-metrics",
        "1,3",
        "--point-messages",
        "90",
        "--actors",
        "50,150",
        "--plot",
        str(tmp_path / "scale.png"),
    )
    assert (tmp_path / "scale.png").read_bytes().startswith(b"\x89PNG\r\n")
    curves = report["curves"]
    assert [p["x"] for p in curves["devices"]] == [10, 30]
    assert [p["x"] for p in curves["metrics"]] == [1, 3]
    for point in curves["devices"] + curves["metrics"]:
        assert point["exact"], point
        assert point["engine_readings_per_s"] > 0
        assert point["broker_only_readings_per_s"] > 0
        assert point["paho_copy_readings_per_s"] > 0
        assert point["source_addresses"] == 1
    # 90 messages a point: 9 each from 10 devices, 3 each from 30.
    assert [p["messages_per_device"] for p in curves["devices"]] == [9, 3]
    assert [m["actors"] for m in curves["actors"]] == [50, 150]
    assert "throughput against devices" in result.stdout


def test_bench_actors_measures_each_size(tmp_path: Path) -> None:
    result, report = _bench(tmp_path, "actors", "--actors", "100,200")
    assert "device actors: memory" in result.stdout
    assert [size["actors"] for size in report["sizes"]] == [100, 200]
    for size in report["sizes"]:
        assert size["passivated"] == size["actors"]
        assert 0 < size["passivated_bytes_per_actor"] < size["live_bytes_per_actor"]


def test_bench_rejects_a_plot_it_cannot_draw_and_bad_sizes() -> None:
    for args, message in (
        (["actors", "--plot", "x.png"], "--plot"),
        (["scale", "--actors", "ten"], "--actors"),
        (["nonsense"], "unknown bench suite"),
    ):
        result = subprocess.run(
            [*SENSORIUM, "bench", *args], capture_output=True, text=True, check=False
        )
        assert result.returncode == 2, args
        assert message in result.stderr, result.stderr


def test_bench_query_times_the_api_beside_raw_sql(tmp_path: Path) -> None:
    result, report = _bench(
        tmp_path, "query", "--devices", "3", "--queries", "6", "--plot", str(tmp_path / "q.png")
    )
    assert (tmp_path / "q.png").read_bytes().startswith(b"\x89PNG\r\n")
    assert report["data"]["readings"] == 3 * 30 * 1440
    assert report["api"]["samples"] == report["raw_sql_on_replica"]["samples"] == 6
    assert report["api"]["source"] == "rollup_1h"  # the range is whole hours
    assert report["api"]["answers_equal_to_raw"] == report["options"]["warmup"] + 6
    assert report["cold"]["api"]["samples"] == report["options"]["warmup"]
    assert report["data"]["loaded_by"] == "writer" and not report["data"]["reused"]
    assert set(report["api"]["served_by"]) <= {"replica-1", "replica-2", "primary"}
    assert report["ratios"]["raw_p50_over_api_p50"] > 0
    assert "same aggregate in SQL on raw rows" in result.stdout


def test_bench_query_full_keeps_its_loaded_stack_and_reuses_it(tmp_path: Path) -> None:
    data = tmp_path / "data"
    args = ("query", "--full", "--devices", "2", "--queries", "3", "--data-dir", str(data))
    _, first = _bench(tmp_path, *args)
    assert first["data"]["loaded_by"] == "copy" and not first["data"]["reused"]
    assert (data / "query-2" / "dataset.json").exists()
    result, second = _bench(tmp_path, *args)
    assert second["data"]["reused"] and second["data"]["readings"] == 2 * 30 * 1440
    assert second["api"]["answers_equal_to_raw"] == second["options"]["warmup"] + 3
    assert "reused from" in result.stdout
    down = subprocess.run(
        [*SENSORIUM, "down", "--purge"],
        env={**os.environ, "SENSORIUM_STATE_DIR": str(data / "query-2")},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert down.returncode == 0, down.stderr
