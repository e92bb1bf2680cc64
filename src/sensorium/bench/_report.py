"""The bench report as a table for people (the JSON has every figure)."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table

__all__ = ["print_report"]


def _rate(value: float) -> str:
    return f"{value:,.0f}"


def print_report(report: dict[str, Any], console: Console) -> None:
    if "engine" in report:
        engine = report["engine"]
        options = report["options"]
        table = Table(
            title=(
                f"ingest over {options['transport']}: {options['devices']} devices x "
                f"{options['messages_per_device']} messages x {options['metrics']} metrics, "
                + (
                    "QoS 1, PUBACK after commit, "
                    if options["transport"] == "mqtt"
                    else f"{options['http_batch']} messages per request, answer after commit, "
                )
                + f"rate {options['rate']}"
            )
        )
        table.add_column("path")
        table.add_column("readings/s", justify="right")
        table.add_column("engine / this", justify="right")
        table.add_row(
            "engine end to end (publish -> commit)", _rate(engine["readings_per_s"]), "1.00"
        )
        for name, label in (
            ("broker_only", "broker only: same frames, bare subscriber"),
            ("paho_copy", "paho + batched COPY script (acks before storing)"),
            ("psql_copy", "psql \\copy of the same rows"),
            ("asyncpg_copy", "asyncpg copy_records_to_table, one transaction"),
            ("asyncpg_copy_batched", "asyncpg COPY into readings, 20k-row commits"),
            ("naive_insert", "one INSERT per row"),
        ):
            baseline = report["baselines"].get(name)
            if baseline is None:
                continue
            table.add_row(
                label,
                _rate(baseline["rows_per_s"]),
                f"{engine['readings_per_s'] / baseline['rows_per_s']:.2f}",
            )
        writer = report["writer_alone"]
        table.add_row(
            "writer alone (same rows)",
            _rate(writer["rows_per_s"]),
            f"{engine['readings_per_s'] / writer['rows_per_s']:.2f}",
        )
        console.print(table)
        latency = engine["latency_s"]
        if latency:
            console.print(
                f"publish-to-commit latency: p50 {latency['p50'] * 1000:.0f} ms, "
                f"p95 {latency['p95'] * 1000:.0f} ms, p99 {latency['p99'] * 1000:.0f} ms"
            )
        console.print(
            f"writer alone / asyncpg copy_records_to_table: "
            f"{report['ratios']['writer_vs_asyncpg_copy']:.2f} (one transaction), "
            f"{report['ratios']['writer_vs_asyncpg_copy_batched']:.2f} (same table and commit size)"
        )
        window = engine["cpu_window_seconds"]
        cpu = Table(title=f"CPU seconds over {window:.1f} s (devices connecting included)")
        cpu.add_column("component")
        cpu.add_column("CPU s", justify="right")
        cpu.add_column("cores", justify="right")
        for name, seconds in engine["cpu_seconds"].items():
            cpu.add_row(name, f"{seconds:.1f}", f"{seconds / window:.2f}")
        console.print(cpu)
        if engine["cpu_seconds"]["load_generator"] / window > 0.9:
            console.print(
                "[bold]warning: the load generator used most of a core; it may be "
                "the bottleneck[/bold]"
            )
        console.print(
            f"stored {engine['readings_stored']} of {engine['readings_expected']} "
            f"readings (exact: {engine['readings_stored'] == engine['readings_expected']})"
        )
    if report.get("suite") == "writer":
        table = Table(
            title=(
                f"writer alone: {report['options']['devices']} devices x "
                f"{report['options']['messages_per_device']} messages x "
                f"{report['options']['metrics']} metrics, median of {report['options']['rounds']}"
            )
        )
        table.add_column("path")
        table.add_column("rows/s (median)", justify="right")
        table.add_column("rounds", justify="right")
        table.add_column("writer / this", justify="right")
        writer = report["writer_alone"]
        table.add_row(
            f"the engine's writer (batches of {writer.get('mean_batch_rows', 0):,.0f} rows)",
            _rate(writer["rows_per_s"]),
            " / ".join(_rate(r) for r in writer["runs"]),
            "1.00",
        )
        for name, label in (
            ("asyncpg_copy", "asyncpg COPY, one transaction"),
            ("asyncpg_copy_batched", "asyncpg COPY into readings, 20k-row commits"),
        ):
            base = report["baselines"][name]
            table.add_row(
                label,
                _rate(base["rows_per_s"]),
                " / ".join(_rate(r) for r in base["runs"]),
                f"{writer['rows_per_s'] / base['rows_per_s']:.2f}",
            )
        console.print(table)
        console.print(
            "writer / one-transaction COPY, round by round: "
            + " / ".join(f"{ratio:.2f}" for ratio in report["per_round_vs_asyncpg_copy"])
        )
    if report.get("suite") == "query":
        table = Table(
            title=(
                f"query: {report['options']['devices']} devices, a month of minute data "
                f"({report['data']['readings']:,} readings), 30-day 1-hour-bucket avg"
            )
        )
        for column in ("path", "p50 ms", "p95 ms", "queries"):
            table.add_column(column, justify="right")
        api, raw = report["api"], report["raw_sql_on_replica"]
        table.add_row(
            f"API ({api['source']}, served by {', '.join(sorted(api['served_by']))})",
            f"{api['p50_ms']:.1f}",
            f"{api['p95_ms']:.1f}",
            f"{api['samples']:.0f}",
        )
        table.add_row(
            "same aggregate in SQL on raw rows (replica)",
            f"{raw['p50_ms']:.1f}",
            f"{raw['p95_ms']:.1f}",
            f"{raw['samples']:.0f}",
        )
        cold = report.get("cold") or {}
        if cold.get("api") and cold.get("raw_sql_on_replica"):
            table.add_row(
                f"cold: the first {report['options']['warmup']} of each, API / raw SQL",
                f"{cold['api']['p50_ms']:.1f} / {cold['raw_sql_on_replica']['p50_ms']:.1f}",
                f"{cold['api']['p95_ms']:.1f} / {cold['raw_sql_on_replica']['p95_ms']:.1f}",
                f"{cold['api']['samples']:.0f}",
            )
        console.print(table)
        data = report["data"]
        how = (
            "reused from " + data["kept_in"] if data["reused"] else f"loaded by {data['loaded_by']}"
        )
        console.print(
            f"data {how} ({data['rows_per_s']:,.0f} readings/s when loaded); "
            f"{api['answers_equal_to_raw']} of "
            f"{api['samples'] + report['options'].get('warmup', 0):.0f} API answers "
            "equal to raw SQL"
        )
        console.print(
            f"raw / API: {report['ratios']['raw_p50_over_api_p50']:.1f}x at p50, "
            f"{report['ratios']['raw_p95_over_api_p95']:.1f}x at p95"
        )
    if report.get("suite") == "alerts":
        _print_alerts(report, console)
    if report.get("suite") == "archive":
        _print_archive(report, console)
    if report.get("suite") == "scale":
        _print_scale(report, console)
    if "sizes" in report:
        _print_actor_sizes(report["sizes"], console)
    elif "actors" in report:
        actors = report["actors"]
        console.print(
            f"device actors: {actors['actors']} spawned in {actors['spawn_seconds']:.2f} s; "
            f"live {actors['live_bytes_per_actor']:.0f} B each, passivated "
            f"{actors['passivated_bytes_per_actor']:.0f} B each"
        )


def _print_scale(report: dict[str, Any], console: Console) -> None:
    for key, label in (("devices", "devices"), ("metrics", "metrics per message")):
        table = Table(title=f"throughput against {label} (QoS 1, PUBACK after commit)")
        for column in (
            label,
            "devices",
            "msgs/device",
            "engine readings/s",
            "broker only",
            "engine/broker",
            "paho + COPY",
            "engine/paho",
            "engine us/msg",
            "loadgen cores",
            "addresses",
            "exact",
        ):
            table.add_column(column, justify="right")
        for point in report["curves"][key]:
            table.add_row(
                str(point["x"]),
                str(point["devices"]),
                str(point["messages_per_device"]),
                _rate(point["engine_readings_per_s"]),
                _rate(point["broker_only_readings_per_s"]),
                f"{point['engine_vs_broker_only']:.2f}",
                _rate(point["paho_copy_readings_per_s"]),
                f"{point['engine_vs_paho_copy']:.2f}",
                f"{point['engine_cpu_us_per_message']:.0f}",
                f"{point['load_generator_cores']:.2f}",
                str(point["source_addresses"]),
                "yes" if point["exact"] else "NO",
            )
        # Wide: a console of its own on the same file, rather than columns cut to "…".
        Console(file=console.file, width=max(console.width, 160)).print(table)
    points = {
        (p["devices"], p["metrics"]): p
        for key in ("devices", "metrics")
        for p in report["curves"][key]
    }
    for (devices, metrics), point in sorted(points.items()):
        if point["load_generator_cores"] > 0.85:
            console.print(
                f"[bold]warning: at {devices} devices x {metrics} metrics the load generator "
                f"used {point['load_generator_cores']:.2f} of a core; it may be the "
                "bottleneck[/bold]"
            )
    _print_actor_sizes(report["curves"]["actors"], console)


def _print_actor_sizes(sizes: list[dict[str, Any]], console: Console) -> None:
    table = Table(title="device actors: memory and spawn time")
    for column in (
        "actors",
        "spawn s",
        "live B/actor",
        "passivated B/actor",
        "live MiB",
        "measured by",
        "RSS growth B/actor, live",
    ):
        table.add_column(column, justify="right")
    for size in sizes:
        table.add_row(
            f"{size['actors']:,}",
            f"{size['spawn_seconds']:.2f}",
            f"{size['live_bytes_per_actor']:,.0f}",
            f"{size['passivated_bytes_per_actor']:,.0f}",
            f"{size['live_bytes_per_actor'] * size['actors'] / 2**20:,.0f}",
            size.get("method", "tracemalloc"),
            f"{size.get('live_rss_bytes_per_actor', 0):,.0f}",
        )
    console.print(table)


def _print_alerts(report: dict[str, Any], console: Console) -> None:
    options = report["options"]
    table = Table(
        title=(
            f"alerts: {report['alert_emails_expected']} alert emails (opened, resolved) from "
            f"{options['probes']} probe devices while {options['devices']} devices publish "
            f"{report['half_rate_messages_per_s']:,.0f} messages/s (half the maximum)"
        )
    )
    for column in ("path", "p50 ms", "p99 ms", "max ms", "emails"):
        table.add_column(column, justify="right")
    for label, figures in (
        ("publish -> device actor -> alert actor -> outbox -> notifier -> SMTP receipt",
         report["publish_to_smtp"]),
        ("baseline: the same email sent straight to the SMTP server", report["direct_smtp"]),
    ):  # fmt: skip
        table.add_row(
            label,
            f"{figures['p50_ms']:.1f}",
            f"{figures['p99_ms']:.1f}",
            f"{figures['max_ms']:.1f}",
            f"{figures['samples']}",
        )
    console.print(table)
    plain, ruled = report["ingest_max"], report["ingest_with_rules"]
    again = report["ingest_max_again"]
    console.print(
        f"maximum ingest: {plain['readings_per_s']:,.0f} and {again['readings_per_s']:,.0f} "
        f"readings/s without rules, {ruled['readings_per_s']:,.0f} between them with "
        f"{options['rules']} tenant-wide rules on every reading "
        f"({report['rules_cost_ratio']:.2f} of their mean); "
        f"p99 {report['ratio_p99']:.1f}x the direct send; goal p99 < 1000 ms: "
        + ("met" if report["goal"]["met"] else "NOT met")
    )


def _print_archive(report: dict[str, Any], console: Console) -> None:
    options = report["options"]
    table = Table(
        title=(
            f"archive: ingest of {options['devices']} devices at {options['rate']:,.0f} "
            f"messages/s, and while an old day of {options['old_readings']:,} readings is "
            f"detached concurrently and dropped ({report['detach_and_drop_s']:.2f} s)"
        )
    )
    for column in ("run", "p50 ms", "p99 ms", "max ms", "longest stall ms", "readings/s"):
        table.add_column(column, justify="right")
    for name, run in report["runs"].items():
        latency = run["latency_s"]
        table.add_row(
            name,
            f"{latency.get('p50', 0) * 1000:.0f}",
            f"{latency.get('p99', 0) * 1000:.0f}",
            f"{run['latency_max_s'] * 1000:.0f}",
            f"{run['longest_stall_s'] * 1000:.0f}",
            f"{run['readings_per_s']:,.0f}",
        )
    console.print(table)
