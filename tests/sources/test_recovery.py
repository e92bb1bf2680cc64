"""Nothing lost, nothing doubled: engine kill -9, primary restart, poison messages,
and a stalled primary (backpressure), on a real stack of their own."""

from __future__ import annotations

import json
import os
import re
import signal
import threading
import time
from collections.abc import Iterator
from functools import partial
from typing import Any

import httpx
import pytest

from sensorium.bench import (
    DeviceCredentials,
    LoadResult,
    provision_devices,
    run_mqtt_load,
    wait_for_broker_login,
)
from sensorium.bench._cpu import process_tree
from tests.support import MqttClient, StackHandle, db_fetch, run_trio, wait_for

pytestmark = pytest.mark.slow

POISON = "POISON-PILL"


@pytest.fixture(scope="module")
def rstack() -> Iterator[StackHandle]:
    handle = StackHandle.create(
        extra_env={
            "SENSORIUM_ENGINE__POISON_MARKER": POISON,
            "SENSORIUM_ENGINE__WRITER_QUEUE": "32",
            "SENSORIUM_ENGINE__MAILBOX_SIZE": "16",
            "SENSORIUM_ENGINE__MAX_INFLIGHT_MESSAGES": "4000",
            "SENSORIUM_ENGINE__BATCH_ROWS": "3000",
            "SENSORIUM_ENGINE__HTTP_ACK_TIMEOUT_S": "5",
        }
    )
    try:
        handle.up()
        yield handle
    finally:
        handle.down("--purge")


def _fleet(stack: StackHandle, count: int, prefix: str) -> list[DeviceCredentials]:
    fleet: list[DeviceCredentials] = run_trio(
        partial(provision_devices, stack.db_url(), count, prefix=prefix)
    )
    run_trio(partial(wait_for_broker_login, fleet[-1], host="127.0.0.1", port=stack.ports["mqtt"]))
    return fleet


def _metric(stack: StackHandle, name: str) -> float:
    text = httpx.get(stack.http_url + "/metrics", timeout=10).text
    match = re.search(rf"^{name} ([0-9.e+]+)$", text, re.MULTILINE)
    return float(match.group(1)) if match else 0.0


def _stored(stack: StackHandle, fleet: list[DeviceCredentials]) -> dict[str, Any]:
    return dict(
        db_fetch(
            stack.db_url(),
            """SELECT count(*) AS n, coalesce(sum(r.value), 0) AS total,
                  count(DISTINCT (r.device_key, r.metric_id, r.ts, r.seq)) AS distinct_n,
                  count(DISTINCT (r.device_key, r.seq)) AS messages
           FROM readings r JOIN devices d ON d.key = r.device_key WHERE d.id = ANY($1)""",
            [d.id for d in fleet],
        )[0]
    )


class Load(threading.Thread):
    """A load generator running beside the test, in its own thread."""

    def __init__(self, stack: StackHandle, fleet: list[DeviceCredentials], **options: Any):
        super().__init__(daemon=True)
        self.call = partial(run_mqtt_load, fleet, port=stack.ports["mqtt"], **options)
        self.result: LoadResult | None = None
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self.result = run_trio(self.call)
        except BaseException as exc:  # reported by the test
            self.error = exc

    def finish(self, timeout: float = 180) -> LoadResult:
        self.join(timeout)
        assert not self.is_alive(), "load generator did not finish"
        assert self.error is None, self.error
        assert self.result is not None and self.result.failures == 0
        return self.result


def _settled(stack: StackHandle) -> bool:
    """The engine holds nothing read and not committed."""
    return (
        _metric(stack, "sensorium_mqtt_inflight") == 0
        and _metric(stack, "sensorium_mqtt_connected") == 1
    )


def _assert_exact(
    stack: StackHandle, fleet: list[DeviceCredentials], result: LoadResult, messages: int
) -> None:
    wait_for(lambda: _stored(stack, fleet)["n"] >= result.readings, timeout=120)
    wait_for(lambda: _settled(stack), timeout=60)
    stored = _stored(stack, fleet)
    assert stored["n"] == result.readings == stored["distinct_n"]
    assert stored["messages"] == len(fleet) * messages
    assert stored["total"] == pytest.approx(result.value_sum, rel=1e-12)


def test_kill_9_of_the_engine_mid_stream_loses_and_doubles_nothing(rstack: StackHandle) -> None:
    fleet = _fleet(rstack, 200, "kill")
    start_ts = int(time.time() * 1000) - 600_000
    load = Load(rstack, fleet, messages=60, metrics=3, rate=2000, start_ts_ms=start_ts)
    load.start()
    wait_for(lambda: _stored(rstack, fleet)["n"] > 3000, timeout=60)
    engine_pid = rstack.component("engine")["pid"]
    os.kill(engine_pid, signal.SIGKILL)
    wait_for(lambda: not os.path.exists(f"/proc/{engine_pid}"), timeout=10)
    partial_count = _stored(rstack, fleet)["n"]
    rstack.up()  # starts only the engine again
    result = load.finish()
    assert partial_count < result.readings  # the kill really was mid-stream
    _assert_exact(rstack, fleet, result, 60)

    # Every message sent again: nothing changes.
    again = Load(rstack, fleet, messages=60, metrics=3, start_ts_ms=start_ts)
    again.start()
    again.finish()
    wait_for(lambda: _metric(rstack, "sensorium_mqtt_received_total") >= 200 * 60, timeout=60)
    _assert_exact(rstack, fleet, result, 60)


def test_primary_restart_during_ingest_loses_and_doubles_nothing(rstack: StackHandle) -> None:
    fleet = _fleet(rstack, 100, "pgrestart")
    load = Load(rstack, fleet, messages=80, metrics=3, rate=1000)
    load.start()
    wait_for(lambda: _stored(rstack, fleet)["n"] > 3000, timeout=60)
    primary_pid = rstack.component("primary")["pid"]
    os.kill(primary_pid, signal.SIGINT)  # fast shutdown
    wait_for(lambda: not os.path.exists(f"/proc/{primary_pid}"), timeout=30)
    time.sleep(2)
    rstack.up()  # starts the primary again
    result = load.finish()
    _assert_exact(rstack, fleet, result, 80)
    assert _metric(rstack, "sensorium_writer_retries_total") >= 1


def test_poison_message_crashes_its_actor_lands_in_dead_letters_others_unaffected(
    rstack: StackHandle,
) -> None:
    victim, neighbour = _fleet(rstack, 2, "poison")
    now = int(time.time() * 1000)
    restarts_before = _metric(rstack, "sensorium_actor_restarts_total")
    client = MqttClient(
        rstack.ports["mqtt"], client_id="poisoner", username=victim.id, password=victim.token
    )
    other = MqttClient(
        rstack.ports["mqtt"], client_id="bystander", username=neighbour.id, password=neighbour.token
    )
    topic = f"devices/{victim.id}/telemetry"
    client.publish(
        topic, json.dumps({"ts": now, "seq": 1, "metrics": {"t": 1}}).encode(), qos=1, packet_id=1
    )
    client.publish(
        topic,
        json.dumps({"ts": now + 1, "seq": 2, "metrics": {"t": 2}, "note": POISON}).encode(),
        qos=1,
        packet_id=2,
    )
    client.publish(
        topic,
        json.dumps({"ts": now + 2, "seq": 3, "metrics": {"t": 3}}).encode(),
        qos=1,
        packet_id=3,
    )
    for i in range(5):
        other.publish(
            f"devices/{neighbour.id}/telemetry",
            json.dumps({"ts": now + i, "seq": i, "metrics": {"t": i}}).encode(),
            qos=1,
            packet_id=i + 1,
        )
    client.close()
    other.close()
    wait_for(
        lambda: db_fetch(
            rstack.db_url(),
            "SELECT 1 FROM dead_letters WHERE device_id = $1 AND reason = 'actor-crash'",
            victim.id,
        ),
        timeout=30,
    )
    wait_for(lambda: _stored(rstack, [victim])["n"] == 2, timeout=30)
    wait_for(lambda: _stored(rstack, [neighbour])["n"] == 5, timeout=30)
    letters = db_fetch(
        rstack.db_url(), "SELECT payload, detail FROM dead_letters WHERE device_id = $1", victim.id
    )
    assert len(letters) == 1 and POISON.encode() in letters[0]["payload"]
    assert "PoisonPill" in letters[0]["detail"]
    seqs = db_fetch(
        rstack.db_url(),
        "SELECT r.seq FROM readings r JOIN devices d ON "
        "d.key = r.device_key WHERE d.id = $1 ORDER BY seq",
        victim.id,
    )
    assert [r["seq"] for r in seqs] == [1, 3]
    assert _metric(rstack, "sensorium_actor_restarts_total") >= restarts_before + 1


def _rss_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status") as file:
        status = file.read()
    return int(re.search(r"VmRSS:\s+(\d+)", status).group(1))  # type: ignore[union-attr]


def test_stalled_primary_pauses_acks_answers_429_stays_bounded_then_lands_everything(
    rstack: StackHandle,
) -> None:
    fleet = _fleet(rstack, 100, "stall")
    http_device = rstack.create_device("stall-http")
    warm = httpx.post(
        rstack.http_url + "/api/v1/telemetry",
        headers={"Authorization": f"Bearer {http_device['token']}"},
        json={"ts": int(time.time() * 1000) - 1000, "metrics": {"t": 0}},
    )
    assert warm.status_code == 200
    load = Load(rstack, fleet, messages=300, metrics=3, rate=3000)
    load.start()
    wait_for(lambda: _stored(rstack, fleet)["n"] > 3000, timeout=60)
    primary_pid = rstack.component("primary")["pid"]
    engine_pid = rstack.component("engine")["pid"]
    stalled = process_tree(primary_pid)
    for pid in stalled:
        os.kill(pid, signal.SIGSTOP)
    try:
        time.sleep(3)
        acked = _metric(rstack, "sensorium_mqtt_acknowledged_total")
        inflight = _metric(rstack, "sensorium_mqtt_inflight")
        rss = [_rss_kb(engine_pid)]
        statuses = []
        for _ in range(17):
            time.sleep(1)
            rss.append(_rss_kb(engine_pid))
            response = httpx.post(
                rstack.http_url + "/api/v1/telemetry",
                headers={"Authorization": f"Bearer {http_device['token']}"},
                json={"ts": int(time.time() * 1000), "metrics": {"t": 1}},
                timeout=40,
            )
            statuses.append((response.status_code, response.headers.get("Retry-After")))
        inflight_after = _metric(rstack, "sensorium_mqtt_inflight")
        acked_after = _metric(rstack, "sensorium_mqtt_acknowledged_total")
    finally:
        for pid in stalled:
            os.kill(pid, signal.SIGCONT)
    assert acked_after == acked  # no PUBACK while nothing commits
    # The reader stopped (full mailboxes and writer queue, or the in-flight bound): at
    # most a few messages trickle in over 17 s.
    assert 0 < inflight <= inflight_after <= min(inflight + 50, 4000)
    assert (429, "1") in statuses
    assert max(rss) - rss[0] < 50_000  # KiB: memory stays bounded while stalled
    result = load.finish()
    _assert_exact(rstack, fleet, result, 300)
