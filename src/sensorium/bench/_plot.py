"""`--plot FILE.png`: the figures of a bench report as pictures.

- ingest: throughput over time (readings published and committed per second, with the
  baselines of the same run as lines) and the publish-to-commit latency distribution;
- writer: each round of the writer and of asyncpg's COPY;
- scale: readings/s against devices and against metrics per message, each beside the
  broker-only baseline, and engine memory against resident device actors.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # no screen: render to files only

import matplotlib.pyplot as plt
from matplotlib.axes import Axes
from matplotlib.figure import Figure

__all__ = ["write_plot"]


def _rates(timeline: list[list[float]], column: int) -> tuple[list[float], list[float]]:
    """Per-second rates of a cumulative column, over windows of ~1 s (commits come in
    batches: shorter windows show the batches, not the rate)."""
    times: list[float] = []
    rates: list[float] = []
    last_t, last_v = None, None
    for point in timeline:
        t, v = point[0], point[column]
        if last_t is None or last_v is None:
            last_t, last_v = t, v
            continue
        if t - last_t >= 1.0:
            times.append(t)
            rates.append((v - last_v) / (t - last_t))
            last_t, last_v = t, v
    return times, rates


def _throughput(ax: Axes, point: dict[str, Any], title: str) -> None:
    timeline = point["engine"].get("timeline") or []
    for column, label in ((1, "published"), (2, "committed")):
        times, rates = _rates(timeline, column)
        ax.plot(times, rates, label=f"readings {label}/s")
    for name, label, color in (
        ("broker_only", "broker only", "tab:green"),
        ("paho_copy", "paho + COPY", "tab:red"),
    ):
        baseline = point["baselines"].get(name)
        if baseline:
            ax.axhline(
                baseline["rows_per_s"], color=color, linestyle="--", linewidth=1, label=label
            )
    ax.axhline(
        point["engine"]["readings_per_s"], color="black", linewidth=1, label="engine, whole run"
    )
    ax.set_xlabel("seconds since the first publish")
    ax.set_ylabel("readings/s")
    ax.set_title(title)
    ax.legend(fontsize="small")


def _latency(ax: Axes, point: dict[str, Any]) -> None:
    samples = [s * 1000 for s in point["engine"].get("latency_samples_s") or []]
    if samples:
        ax.hist(samples, bins=40)
    for name, style in (("p50", "-"), ("p95", "--"), ("p99", ":")):
        value = point["engine"]["latency_s"].get(name)
        if value is not None:
            ax.axvline(
                value * 1000, color="black", linestyle=style, label=f"{name} {value * 1000:.0f} ms"
            )
    ax.set_xlabel("publish-to-commit latency (ms)")
    ax.set_ylabel("samples")
    ax.set_title("latency distribution")
    ax.legend(fontsize="small")


def _ingest(report: dict[str, Any]) -> Figure:
    figure, (left, right) = plt.subplots(1, 2, figsize=(13, 4.8))
    options = report["options"]
    _throughput(
        left,
        report,
        f"{options['devices']} devices x {options['messages_per_device']} messages x "
        f"{options['metrics']} metrics over {options['transport']}",
    )
    _latency(right, report)
    return figure


def _writer(report: dict[str, Any]) -> Figure:
    figure, ax = plt.subplots(figsize=(8, 4.8))
    series = {"writer": report["writer_alone"]["runs"]}
    for name in ("asyncpg_copy", "asyncpg_copy_batched"):
        series[name] = report["baselines"][name]["runs"]
    rounds = len(series["writer"])
    width = 0.8 / len(series)
    for offset, (name, runs) in enumerate(series.items()):
        ax.bar([r + offset * width for r in range(rounds)], runs, width, label=name)
    ax.set_xticks(
        [r + 0.4 - width / 2 for r in range(rounds)], [f"round {r + 1}" for r in range(rounds)]
    )
    ax.set_ylabel("rows/s")
    ax.set_title("the writer alone beside asyncpg COPY, interleaved rounds")
    ax.legend(fontsize="small")
    return figure


def _scale(report: dict[str, Any]) -> Figure:
    figure, axes = plt.subplots(1, 3, figsize=(16, 4.8))
    for ax, key, label in (
        (axes[0], "devices", "devices (log)"),
        (axes[1], "metrics", "metrics per message"),
    ):
        points = report["curves"][key]
        xs = [p["x"] for p in points]
        ax.plot(xs, [p["engine_readings_per_s"] for p in points], marker="o", label="engine")
        ax.plot(
            xs, [p["broker_only_readings_per_s"] for p in points], marker="s", label="broker only"
        )
        ax.plot(
            xs, [p["paho_copy_readings_per_s"] for p in points], marker="^", label="paho + COPY"
        )
        if key == "devices":
            ax.set_xscale("log")
        ax.set_xlabel(label)
        ax.set_ylabel("readings/s")
        ax.set_title(f"throughput against {key}")
        ax.legend(fontsize="small")
    memory = report["curves"]["actors"]
    xs = [m["actors"] for m in memory]
    axes[2].plot(
        xs,
        [m["live_bytes_per_actor"] * m["actors"] / 2**20 for m in memory],
        marker="o",
        label="live",
    )
    axes[2].plot(
        xs,
        [m["passivated_bytes_per_actor"] * m["actors"] / 2**20 for m in memory],
        marker="s",
        label="passivated",
    )
    axes[2].set_xscale("log")
    axes[2].set_yscale("log")
    axes[2].set_xlabel("resident device actors")
    axes[2].set_ylabel("MiB")
    axes[2].set_title("engine memory against device actors")
    axes[2].legend(fontsize="small")
    return figure


def _query(report: dict[str, Any]) -> Figure:
    figure, ax = plt.subplots(figsize=(9, 4.8))
    api = report["api"]["samples_ms"]
    raw = report["raw_sql_on_replica"]["samples_ms"]
    bins = 40
    ax.hist(
        api,
        bins=bins,
        alpha=0.7,
        label=f"API, {report['api']['source']} (p95 {report['api']['p95_ms']:.1f} ms)",
    )
    ax.hist(
        raw,
        bins=bins,
        alpha=0.7,
        label=f"SQL on raw rows (p95 {report['raw_sql_on_replica']['p95_ms']:.1f} ms)",
    )
    ax.set_xlabel("latency of a 30-day, 1-hour-bucket query for one device (ms)")
    ax.set_ylabel("queries")
    ax.set_title(f"{report['options']['devices']} devices, a month of minute data")
    ax.legend(fontsize="small")
    return figure


def write_plot(report: dict[str, Any], path: Path) -> None:
    suite = report.get("suite")
    if suite == "ingest":
        figure = _ingest(report)
    elif suite == "writer":
        figure = _writer(report)
    elif suite == "scale":
        figure = _scale(report)
    elif suite == "query":
        figure = _query(report)
    else:
        raise ValueError(f"no plot for the {suite} suite")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
