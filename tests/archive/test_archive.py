"""Retention to object storage against moto's S3 server (a real HTTP endpoint), with a
proxy in front of it for faults: a day's readings exported as Parquet per tenant with a
manifest, read back and verified, the partition dropped; restored equal (count and
checksums). When the store fails uploads or returns corrupt reads, nothing is dropped."""

from __future__ import annotations

import datetime as dt
import http.client
import secrets
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import urlsplit

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from sensorium.archive import (
    ArchiveCollector,
    ArchiveError,
    ArchiveStatistics,
    ObjectStore,
    StoreOptions,
    archivable_days,
    archive_day,
    archive_due_days,
    restore_day,
)
from sensorium.storage import (
    ReadingBatch,
    connect,
    create_device,
    create_pool,
    write_batch,
)
from tests.s3_standin import s3_env
from tests.support import (
    SENSORIUM,
    StackHandle,
    db_fetch,
    fresh_database,
    run_trio,
    serve_http,
)

pytestmark = pytest.mark.slow

DAY_US = 86_400_000_000
_CHECKSUM = """SELECT count(*) AS n, sum(value) AS total,
                      sum(hashtext(device_key || ':' || metric_id || ':' || ts || ':'
                                   || coalesce(seq, -1) || ':' || value)::int8) AS rows_hash
               FROM readings WHERE ts >= $1 AND ts < $1 + interval '1 day'"""


@dataclass
class Faults:
    fail_puts: bool = False
    corrupt_gets: bool = False


@pytest.fixture
def proxy(moto_url: str) -> Iterator[tuple[str, Faults]]:
    """A proxy in front of moto that fails uploads or corrupts objects read, on demand."""
    faults = Faults()
    upstream = urlsplit(moto_url)

    class Handler(BaseHTTPRequestHandler):
        def _forward(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0") or 0))
            if self.command == "PUT" and faults.fail_puts:
                self.send_response(500)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            conn = http.client.HTTPConnection(upstream.hostname, upstream.port, timeout=30)
            conn.request(self.command, self.path, body=body, headers=dict(self.headers))
            answer = conn.getresponse()
            data = answer.read()
            corrupt = (
                self.command == "GET" and faults.corrupt_gets and self.path.endswith(".parquet")
            )
            if corrupt:
                # One byte flipped, and the checksum headers boto3 would check dropped:
                # only the archive's own SHA-256 can catch it now.
                data = data[:100] + bytes([data[100] ^ 0xFF]) + data[101:]
            self.send_response(answer.status)
            for name, value in answer.getheaders():
                lowered = name.lower()
                if lowered in ("content-length", "transfer-encoding", "connection"):
                    continue
                if corrupt and (lowered.startswith("x-amz-checksum") or lowered == "etag"):
                    continue
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_PUT = do_POST = do_HEAD = do_DELETE = _forward

        def log_message(self, *args: Any) -> None:
            pass

    with serve_http(Handler) as url:
        yield url, faults


def _leaves(error: BaseException) -> list[BaseException]:
    if isinstance(error, BaseExceptionGroup):
        return [leaf for inner in error.exceptions for leaf in _leaves(inner)]
    return [error]


def _store(url: str, bucket: str) -> ObjectStore:
    return ObjectStore(
        StoreOptions(
            bucket=bucket, endpoint_url=url, access_key_id="test", secret_access_key="test"
        )
    )


def _day_with_readings(stack: StackHandle, name: str) -> tuple[str, dt.date, int]:
    """A fresh database with 40 days ago and today holding readings of two tenants."""
    url = fresh_database(stack, name)
    old = dt.datetime.now(dt.UTC).date() - dt.timedelta(days=40)
    old_us = int(dt.datetime.combine(old, dt.time(), tzinfo=dt.UTC).timestamp() * 1_000_000)
    now_us = int(time.time() * 1_000_000)

    async def go() -> int:
        conn = await connect(url)
        try:
            keys = []
            for tenant in ("north", "south"):
                for n in range(3):
                    made = await create_device(conn, name=f"{tenant}-{n}", tenant=tenant)
                    keys.append(
                        await conn.fetchval("SELECT key FROM devices WHERE id = $1", made.id)
                    )
            await conn.execute("INSERT INTO metrics (name) VALUES ('temperature'), ('power')")
            for day in (old, dt.datetime.now(dt.UTC).date()):
                await conn.execute("SELECT ensure_readings_partitions($1, $1)", day)
            rows = [
                (key, metric, base + i * 60_000_000, 20.0 + key * 0.5 + i * 0.01 + metric,
                 i if i % 7 else None)
                for base in (old_us, now_us - 3_600_000_000)
                for key in keys for metric in (1, 2) for i in range(250)
            ]  # fmt: skip
            batch = ReadingBatch(batch_id=secrets.randbits(63))
            batch.add_rows(rows)
            await conn.run(write_batch, batch, timeout=60)
            return len(rows) // 2
        finally:
            await conn.close()

    per_day: int = run_trio(go)
    return url, old, per_day


def _run(url: str, fn: Any, *args: Any) -> Any:
    async def go() -> Any:
        pool = await create_pool(url, min_size=1, max_size=3)
        try:
            return await fn(pool, *args)
        finally:
            await pool.close()

    return run_trio(go)


def test_a_day_is_exported_verified_dropped_and_restored_equal(
    stack: StackHandle, moto_url: str
) -> None:
    url, day, per_day = _day_with_readings(stack, "archive_round_trip")
    start = dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC)
    before = dict(db_fetch(url, _CHECKSUM, start)[0])
    assert before["n"] == per_day == 3000
    store = _store(moto_url, "round-trip")
    today = dt.datetime.now(dt.UTC).date()
    assert _run(url, lambda pool: archivable_days(pool, retention_days=30, today=today)) == [day]

    result = _run(url, archive_day, store, day)
    assert (result.day, result.readings, result.objects) == (day, 3000, 2)
    keys = sorted(run_trio(store.keys, f"{day:%Y/%m/%d}/"))
    assert len(keys) == 3 and keys[-1].endswith("manifest.json")
    assert db_fetch(url, "SELECT to_regclass($1) AS t", f"readings_{day:%Y%m%d}")[0]["t"] is None
    assert db_fetch(url, _CHECKSUM, start)[0]["n"] == 0
    assert (
        db_fetch(url, "SELECT readings FROM archived_days WHERE day = $1", day)[0]["readings"]
        == 3000
    )
    today_start = dt.datetime.combine(today, dt.time(), tzinfo=dt.UTC)
    assert db_fetch(url, _CHECKSUM, today_start)[0]["n"] > 0  # inside the window: kept

    # A late reading for the archived day: a new partition, which is not archived alone
    # (that would replace the day's objects); restoring makes the day whole again.
    late = int(start.timestamp() * 1_000_000) + 7_000_000

    async def write_late() -> None:
        conn = await connect(url)
        try:
            await conn.execute("SELECT ensure_readings_partitions($1, $1)", day)
            batch = ReadingBatch(batch_id=secrets.randbits(63))
            batch.add_rows([(1, 1, late, 99.5, None)])
            await conn.run(write_batch, batch, timeout=30)
        finally:
            await conn.close()

    run_trio(write_late)
    with pytest.raises(Exception) as refused:
        _run(url, archive_day, store, day)
    assert any("archived already" in str(e) for e in _leaves(refused.value))
    assert db_fetch(url, _CHECKSUM, start)[0]["n"] == 1
    assert _run(url, restore_day, store, day) == 3000
    assert db_fetch(url, _CHECKSUM, start)[0]["n"] == 3001
    db_fetch(url, "DELETE FROM readings WHERE ts = to_timestamp($1 / 1e6)", late)
    after = dict(db_fetch(url, _CHECKSUM, start)[0])
    # Every row back, exactly (a hash over each row's every field); the float sum in
    # another order.
    assert (after["n"], after["rows_hash"]) == (before["n"], before["rows_hash"])
    assert after["total"] == pytest.approx(before["total"], rel=1e-12)


@pytest.mark.parametrize("fault", ["fail_puts", "corrupt_gets"])
def test_when_the_store_fails_or_corrupts_no_partition_is_dropped(
    stack: StackHandle, proxy: tuple[str, Faults], fault: str
) -> None:
    url, day, _ = _day_with_readings(stack, f"archive_{fault}")
    start = dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC)
    before = dict(db_fetch(url, _CHECKSUM, start)[0])
    endpoint, faults = proxy
    store = _store(endpoint, f"faulty-{fault.replace('_', '-')}")
    run_trio(store.ensure_bucket)
    setattr(faults, fault, True)
    with pytest.raises(Exception) as failure:
        _run(url, archive_day, store, day)
    if fault == "corrupt_gets":
        assert any(isinstance(e, ArchiveError) and "SHA-256" in str(e)
                   for e in _leaves(failure.value))  # fmt: skip
    assert db_fetch(url, "SELECT to_regclass($1) AS t", f"readings_{day:%Y%m%d}")[0]["t"]
    assert dict(db_fetch(url, _CHECKSUM, start)[0]) == before  # all there, untouched
    assert db_fetch(url, "SELECT count(*) AS n FROM archived_days")[0]["n"] == 0


def test_archive_run_list_and_restore_from_the_command_line(
    stack: StackHandle, moto_url: str
) -> None:
    url, day, per_day = _day_with_readings(stack, "archive_cli")
    env = {**stack.env, "SENSORIUM_DATABASE__PRIMARY_URL": url, **s3_env(moto_url, "from-the-cli")}

    def cli(*args: str) -> str:
        result = subprocess.run(
            [*SENSORIUM, "archive", *args], env=env, capture_output=True, text=True,
            timeout=120, check=False,
        )  # fmt: skip
        assert result.returncode == 0, result.stdout + result.stderr
        return result.stdout

    ran = cli("run", "--retention-days", "30")
    assert ran.strip() == (
        f"archived {day}: {per_day} readings in 2 objects ({day:%Y/%m/%d}/manifest.json)"
    )
    assert cli("run", "--retention-days", "30").strip().startswith("no day to archive")
    listed = cli("list")
    assert listed.startswith(f"{day}  {per_day} readings  {day:%Y/%m/%d}/manifest.json")
    assert cli("restore", str(day)).strip() == f"restored {day}: {per_day} readings"
    assert "restored" in cli("list").split("archived", 1)[1]
    start = dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC)
    assert db_fetch(url, _CHECKSUM, start)[0]["n"] == per_day


def test_the_archive_job_counts_its_runs_days_and_readings_for_metrics(
    stack: StackHandle, moto_url: str
) -> None:
    url, day, per_day = _day_with_readings(stack, "archive_metrics")
    stats = ArchiveStatistics()
    store = _store(moto_url, "metrics")
    done = _run(
        url,
        lambda pool: archive_due_days(pool, store, retention_days=30, statistics=stats),
    )
    assert [r.day for r in done] == [day]
    registry = CollectorRegistry()
    registry.register(ArchiveCollector(stats))
    text = generate_latest(registry).decode()
    assert "sensorium_archive_runs_total 1.0" in text
    assert 'sensorium_archive_days_total{outcome="archived"} 1.0' in text
    assert 'sensorium_archive_days_total{outcome="failed"} 0.0' in text
    assert f"sensorium_archive_readings_total {float(per_day)}" in text
    assert stats.last_success_unix > time.time() - 60
