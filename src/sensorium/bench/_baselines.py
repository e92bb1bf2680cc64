"""The baselines the ingest bench measures beside the engine, on the same rows:
`psql \\copy`, asyncpg COPY (one transaction, and in the writer's commit size), one
INSERT per row, and the engine's writer alone."""

from __future__ import annotations

import csv
import datetime as dt
import os
import time
from collections.abc import Iterable
from typing import Any

import trio

from sensorium.actors import Writer, WriteRequest
from sensorium.engine import tune_garbage_collector
from sensorium.storage import Connection, Pool, connect, create_pool

__all__ = [
    "WRITER_BATCH_ROWS",
    "asyncpg_copy",
    "asyncpg_copy_batched",
    "median_run",
    "quiet_database",
    "records_of",
    "replicas_caught_up",
    "sql_baselines",
    "writer_alone",
    "writer_rounds",
]

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
WRITER_BATCH_ROWS = 20_000  # the engine's default (SENSORIUM_ENGINE__BATCH_ROWS)
WRITER_BATCH_ROWS_MAX = 100_000  # SENSORIUM_ENGINE__BATCH_ROWS_MAX

Row = tuple[int, int, int, float, int]


def _write_csv(path: str, rows: list[tuple[int, int, int, float, int]]) -> None:
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        for key, metric, ts_us, value, seq in rows:
            ts = (_EPOCH + dt.timedelta(microseconds=ts_us)).isoformat()
            writer.writerow((ts, repr(value), key, metric, seq))


def records_of(rows: list[tuple[int, int, int, float, int]]) -> list[tuple[object, ...]]:
    """The rows as a user of asyncpg hands them over (prepared before any timing)."""
    return [
        (_EPOCH + dt.timedelta(microseconds=ts_us), value, key, metric, seq)
        for key, metric, ts_us, value, seq in rows
    ]


async def asyncpg_copy(url: str, records: list[tuple[object, ...]], table: str) -> dict[str, float]:
    """asyncpg's raw `copy_records_to_table` of the rows, in one transaction, into a
    table shaped like `readings`."""
    conn = await connect(url, command_timeout=600)
    try:
        await conn.execute(f"DROP TABLE IF EXISTS {table}")
        await conn.execute(f"CREATE TABLE {table} (LIKE readings INCLUDING ALL)")
        started = time.perf_counter()
        await conn.copy_records_to_table(
            table, records=records, columns=("ts", "value", "device_key", "metric_id", "seq")
        )
        seconds = time.perf_counter() - started
        await conn.execute(f"DROP TABLE {table}")
    finally:
        await conn.close()
    return {"rows": len(records), "seconds": seconds, "rows_per_s": len(records) / seconds}


async def asyncpg_copy_batched(
    url: str, rows: list[tuple[int, int, int, float, int]], *, shift_us: int, batch_rows: int
) -> dict[str, float]:
    """asyncpg's `copy_records_to_table` into `readings` itself, committing every
    ``batch_rows`` rows as the writer must (it acknowledges only what is committed):
    the same table, partitions, index and commit size, without the writer's work."""
    records = records_of([(k, m, ts + shift_us, v, s) for k, m, ts, v, s in rows])
    conn = await connect(url, command_timeout=600)
    try:
        await _ensure_partitions(conn, (ts + shift_us for _, _, ts, _, _ in rows))
        started = time.perf_counter()
        for index in range(0, len(records), batch_rows):
            async with conn.transaction():
                await conn.copy_records_to_table(
                    "readings",
                    records=records[index : index + batch_rows],
                    columns=("ts", "value", "device_key", "metric_id", "seq"),
                )
        seconds = time.perf_counter() - started
    finally:
        await conn.close()
    return {"rows": len(records), "seconds": seconds, "rows_per_s": len(records) / seconds}


async def _ensure_partitions(db: Connection | Pool, stamps_us: Iterable[int]) -> None:
    days = {ts // 86_400_000_000 for ts in stamps_us}
    epoch_day = dt.date(1970, 1, 1)
    await db.execute(
        "SELECT ensure_readings_partitions($1, $2)",
        epoch_day + dt.timedelta(days=min(days)),
        epoch_day + dt.timedelta(days=max(days)),
    )


async def replicas_caught_up(url: str, *, timeout_s: float = 60.0) -> None:
    """Wait until every streaming replica has replayed all the primary's WAL. The
    replicas replay on the same two cores: without this, one run's WAL is still being
    replayed while the next run is timed (measured: a replica's 0.3 CPU s of replay
    showing up in the following run's window)."""
    conn = await connect(url)
    try:
        target = await conn.fetchval("SELECT pg_current_wal_lsn()")
        with trio.move_on_after(timeout_s):
            while True:  # polling the server: there is nothing local to wait on
                behind = await conn.fetchval(
                    "SELECT count(*) FROM pg_stat_replication "
                    "WHERE replay_lsn IS NULL OR replay_lsn < $1",
                    target,
                )
                if not behind:
                    break
                await trio.sleep(0.05)
    finally:
        await conn.close()


async def quiet_database(url: str) -> None:
    """Before a timed run: vacuum what the previous runs wrote, then let the replicas
    replay that too. Otherwise autovacuum takes up the last run's inserts (300,000 rows
    into a fresh partition pass its threshold) at some moment of a later run, whichever
    side that is. Measured on one stack, 10-12 interleaved rounds of the writer and the
    one-transaction COPY: per-round ratios 0.56-1.06 without this, 0.69-0.89 (and one
    0.52) with it."""
    conn = await connect(url, command_timeout=600)
    try:
        await conn.execute("VACUUM")
    finally:
        await conn.close()
    await replicas_caught_up(url)


def median_run(runs: list[dict[str, float]]) -> dict[str, Any]:
    """The median run, with every run's rate beside it."""
    ordered = sorted(runs, key=lambda run: run["rows_per_s"])
    return {**ordered[len(ordered) // 2], "runs": [run["rows_per_s"] for run in runs]}


async def sql_baselines(
    url: str, rows: list[tuple[int, int, int, float, int]], naive_rows: int, workdir: str
) -> dict[str, dict[str, Any]]:
    conn = await connect(url, command_timeout=600)
    results: dict[str, dict[str, Any]] = {}
    try:
        for table in ("bench_psql", "bench_naive"):
            await conn.execute(f"DROP TABLE IF EXISTS {table}")
            await conn.execute(f"CREATE TABLE {table} (LIKE readings INCLUDING ALL)")
        csv_path = os.path.join(workdir, "rows.csv")
        await trio.to_thread.run_sync(_write_csv, csv_path, rows)
        started = time.perf_counter()
        command = f"\\copy bench_psql (ts, value, device_key, metric_id, seq) FROM '{csv_path}' CSV"
        await trio.run_process(
            ["psql", url, "-v", "ON_ERROR_STOP=1", "-c", command],
            capture_stdout=True,
            capture_stderr=True,
        )
        seconds = time.perf_counter() - started
        results["psql_copy"] = {
            "rows": len(rows),
            "seconds": seconds,
            "rows_per_s": len(rows) / seconds,
        }

        records = records_of(rows)
        sample = records[:naive_rows]
        started = time.perf_counter()
        for record in sample:
            await conn.execute(
                "INSERT INTO bench_naive (ts, value, device_key, metric_id, seq) "
                "VALUES ($1, $2, $3, $4, $5)",
                *record,
            )
        seconds = time.perf_counter() - started
        results["naive_insert"] = {
            "rows": len(sample),
            "seconds": seconds,
            "rows_per_s": len(sample) / seconds,
        }
        for table in ("bench_psql", "bench_naive"):
            await conn.execute(f"DROP TABLE {table}")
    finally:
        await conn.close()
    return results


async def writer_alone(
    url: str, rows: list[tuple[int, int, int, float, int]], shift_us: int
) -> dict[str, float]:
    """The engine's writer on the same rows (shifted to other timestamps), fed in
    message-sized requests as the device actors feed it."""
    tune_garbage_collector()  # as the engine does
    # Both connections open before timing, as in a running engine.
    pool = await create_pool(url, min_size=2, max_size=2, command_timeout=600)
    writer = Writer(
        pool,
        batch_rows=WRITER_BATCH_ROWS,
        batch_rows_max=WRITER_BATCH_ROWS_MAX,
        batch_age_s=0.02,
        queue_size=1024,
    )
    shifted = [(k, m, ts + shift_us, v, s) for k, m, ts, v, s in rows]
    # The device actors' requests, one per message, made before timing starts as the
    # records handed to asyncpg are: what is timed is what the writer does with them.
    chunk = 3
    requests = [
        WriteRequest(rows=shifted[index : index + chunk]) for index in range(0, len(shifted), chunk)
    ]
    try:
        # As for the batched COPY: the days' partitions exist before timing starts (the
        # engine creates them ahead of the clock; the writer checks they exist).
        await _ensure_partitions(pool, (ts for _, _, ts, _, _ in shifted))
        async with trio.open_nursery() as nursery:
            await nursery.start(writer.run)
            started = time.perf_counter()
            for request in requests:
                await writer.submit(request)
            writer.close()
        seconds = time.perf_counter() - started
    finally:
        await pool.close()
    batches = writer.statistics().batches
    return {
        "rows": len(rows),
        "seconds": seconds,
        "rows_per_s": len(rows) / seconds,
        "batches": batches,
        "mean_batch_rows": len(rows) / max(1, batches),
    }


async def writer_rounds(
    url: str, rows: list[Row], *, rounds: int = 3
) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """The writer alone against asyncpg's raw COPY (one transaction, and the writer's
    commit size), interleaved ``rounds`` times: the machine is shared and noisy, so the
    ratios are taken between medians. Returns (writer, baselines)."""
    records = records_of(rows)
    one_tx: list[dict[str, float]] = []
    batched: list[dict[str, float]] = []
    writer: list[dict[str, float]] = []
    for round_ in range(rounds):
        await quiet_database(url)
        one_tx.append(await asyncpg_copy(url, records, f"bench_asyncpg_{round_}"))
        await quiet_database(url)
        batched.append(
            await asyncpg_copy_batched(
                url, rows, batch_rows=WRITER_BATCH_ROWS, shift_us=(2 * round_ + 1) * 86_400_000_000
            )
        )
        await quiet_database(url)
        writer.append(await writer_alone(url, rows, shift_us=(2 * round_ + 2) * 86_400_000_000))
    return median_run(writer), {
        "asyncpg_copy": median_run(one_tx),
        "asyncpg_copy_batched": median_run(batched),
    }
