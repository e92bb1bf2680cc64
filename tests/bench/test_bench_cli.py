"""The bench suites run end to end (tiny sizes: the figures themselves are for
BENCHMARKS.md, never asserted here)."""

from __future__ import annotations

import json
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
    )
    engine = report["engine"]
    assert engine["readings_stored"] == engine["readings_expected"] == 20 * 5 * 3
    expected_baselines = {"psql_copy", "asyncpg_copy", "asyncpg_copy_batched", "naive_insert"}
    if transport == "mqtt":
        expected_baselines.add("broker_only")
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
    assert report["actors"]["actors"] == 200
    assert "engine end to end" in result.stdout


def test_bench_suites_not_there_yet_exit_2() -> None:
    for suite in ("query", "alerts"):
        result = subprocess.run(
            [*SENSORIUM, "bench", suite], capture_output=True, text=True, check=False
        )
        assert result.returncode == 2
        assert "not available yet" in result.stderr


def test_bench_writer_reports_the_writer_beside_asyncpg(tmp_path: Path) -> None:
    result, report = _bench(tmp_path, "writer", "--devices", "50", "--messages", "10")
    assert report["writer_alone"]["rows"] == 50 * 10 * 3
    assert len(report["writer_alone"]["runs"]) == 3
    assert set(report["baselines"]) == {"asyncpg_copy", "asyncpg_copy_batched"}
    assert all(ratio > 0 for ratio in report["ratios"].values())
    assert "the engine's writer" in result.stdout
