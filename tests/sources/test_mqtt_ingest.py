"""MQTT ingest end to end on the real stack: exact counts, checksums, no duplicates."""

from __future__ import annotations

import json
import time
from functools import partial

import pytest

from sensorium.bench import provision_devices, run_mqtt_load, wait_for_broker_login
from tests.support import MqttClient, StackHandle, broker_accepts, db_fetch, run_trio, wait_for

pytestmark = pytest.mark.slow


def _stored(stack: StackHandle, device_ids: list[str]) -> tuple[int, float, int]:
    row = db_fetch(
        stack.db_url(),
        """SELECT count(*) AS n, coalesce(sum(r.value), 0) AS total,
                  count(DISTINCT (r.device_key, r.metric_id, r.ts, r.seq)) AS distinct_n
           FROM readings r JOIN devices d ON d.key = r.device_key WHERE d.id = ANY($1)""",
        device_ids,
    )[0]
    return row["n"], row["total"], row["distinct_n"]


def test_thousand_devices_times_twenty_messages_land_exactly(stack: StackHandle) -> None:
    fleet = run_trio(partial(provision_devices, stack.db_url(), 1000, prefix="mqtt-e2e"))
    run_trio(partial(wait_for_broker_login, fleet[-1], host="127.0.0.1", port=stack.ports["mqtt"]))
    start_ts = int(time.time() * 1000) - 60_000
    result = run_trio(
        partial(
            run_mqtt_load,
            fleet,
            port=stack.ports["mqtt"],
            messages=20,
            metrics=3,
            start_ts_ms=start_ts,
        )
    )
    assert result.failures == 0
    ids = [d.id for d in fleet]
    expected = 1000 * 20 * 3
    wait_for(lambda: _stored(stack, ids)[0] >= expected, timeout=120)
    count, total, distinct = _stored(stack, ids)
    assert count == expected == distinct
    assert total == pytest.approx(result.value_sum, rel=1e-12)

    # Every message sent again (new connections, same readings): nothing new is stored.
    again = run_trio(
        partial(
            run_mqtt_load,
            fleet[:200],
            port=stack.ports["mqtt"],
            messages=20,
            metrics=3,
            start_ts_ms=start_ts,
        )
    )
    assert again.failures == 0
    marker = _publish_marker(stack, fleet[0].id, fleet[0].token)
    wait_for(lambda: _stored(stack, [fleet[0].id])[0] == 61, timeout=60)  # the marker landed
    assert marker
    count, total, distinct = _stored(stack, ids)
    assert count == expected + 1 == distinct

    # Per-device sequence ranges are complete.
    ranges = db_fetch(
        stack.db_url(),
        """SELECT min(seq) AS lo, max(seq) AS hi, count(DISTINCT seq) AS n
           FROM readings r JOIN devices d ON d.key = r.device_key
           WHERE d.id = ANY($1) AND r.seq < 1000 GROUP BY d.id""",
        ids,
    )
    assert len(ranges) == 1000
    assert {(r["lo"], r["hi"], r["n"]) for r in ranges} == {(0, 19, 20)}
    # Minute rollups agree with the raw rows, minute by minute.
    check = db_fetch(
        stack.db_url(),
        """WITH mine AS (SELECT key FROM devices WHERE id = ANY($1)),
           raw AS (SELECT device_key, metric_id, date_trunc('minute', ts) AS bucket,
                          count(*) AS count, min(value) AS min, max(value) AS max
                   FROM readings WHERE device_key IN (SELECT key FROM mine) GROUP BY 1, 2, 3),
           rolled AS (SELECT device_key, metric_id, bucket, count, min, max
                      FROM rollup_1m_merged WHERE device_key IN (SELECT key FROM mine))
           SELECT (SELECT count(*) FROM raw) AS keys,
                  (SELECT count(*) FROM (SELECT * FROM raw EXCEPT SELECT * FROM rolled) a)
                + (SELECT count(*) FROM (SELECT * FROM rolled EXCEPT SELECT * FROM raw) b)
                  AS differ""",
        ids,
    )[0]
    assert check["keys"] > 0
    assert check["differ"] == 0


def _publish_marker(stack: StackHandle, device_id: str, token: str) -> bool:
    """One message after the resend: once it is stored, the resend was processed too
    (one device's messages are handled in order)."""
    client = MqttClient(stack.ports["mqtt"], client_id="marker", username=device_id, password=token)
    payload = json.dumps(
        {"ts": int(time.time() * 1000), "seq": 1000, "metrics": {"temperature": 1.0}}
    ).encode()
    client.publish(f"devices/{device_id}/telemetry", payload, qos=1, packet_id=1)
    client.next_packet()
    client.close()
    return True


def test_bad_mqtt_payloads_become_dead_letters_and_others_are_unaffected(
    stack: StackHandle,
) -> None:
    device = stack.create_device("noisy")
    neighbour = stack.create_device("quiet")
    wait_for(
        lambda: broker_accepts(stack.ports["mqtt"], neighbour["id"], neighbour["token"]),
        timeout=10,
    )
    now = int(time.time() * 1000)
    bad = [
        b"{not json",
        b"[1, 2]",
        b'"a string"',
        json.dumps({"ts": now, "metrics": {"t": True}}).encode(),
        json.dumps({"ts": now, "metrics": {"Bad-Name": 1}}).encode(),
        json.dumps({"ts": now, "metrics": {}}).encode(),
        json.dumps({"ts": 946684799000, "metrics": {"t": 1}}).encode(),
        json.dumps({"ts": now + 3_600_000, "metrics": {"t": 1}}).encode(),
        json.dumps({"metrics": {"t": 1}}).encode(),
        b'{"ts": 1764090000000, "metrics": {"t": 1e999}}',
        b'"\x80"',  # a JSON string that is not UTF-8 (once escaped the decoder)
        b"x" * 70_000,
    ]
    noisy = MqttClient(
        stack.ports["mqtt"], client_id="noisy", username=device["id"], password=device["token"]
    )
    quiet = MqttClient(
        stack.ports["mqtt"],
        client_id="quiet",
        username=neighbour["id"],
        password=neighbour["token"],
    )
    for index, payload in enumerate(bad, start=1):
        noisy.publish(f"devices/{device['id']}/telemetry", payload, qos=1, packet_id=index)
        quiet.publish(
            f"devices/{neighbour['id']}/telemetry",
            json.dumps({"ts": now + index, "metrics": {"t": index}}).encode(),
            qos=1,
            packet_id=index,
        )
    noisy.close()
    quiet.close()
    wait_for(
        lambda: (
            len(
                db_fetch(
                    stack.db_url(), "SELECT 1 FROM dead_letters WHERE device_id = $1", device["id"]
                )
            )
            == len(bad)
        ),
        timeout=30,
    )
    reasons = [
        r["reason"]
        for r in db_fetch(
            stack.db_url(),
            "SELECT reason FROM dead_letters WHERE device_id = $1 ORDER BY id",
            device["id"],
        )
    ]
    assert reasons == [
        "malformed-json",
        "not-an-object",
        "not-an-object",
        "wrong-type",
        "bad-metric-name",
        "empty-metrics",
        "timestamp-too-old",
        "timestamp-in-future",
        "missing-field",
        "non-finite-value",
        "malformed-json",
        "oversize",
    ]
    sizes = db_fetch(
        stack.db_url(),
        """SELECT payload_size, length(payload) AS kept
        FROM dead_letters WHERE device_id = $1 AND reason = 'oversize'""",
        device["id"],
    )
    assert sizes[0]["payload_size"] == 70_000 and sizes[0]["kept"] <= 4096
    wait_for(lambda: _stored(stack, [neighbour["id"]])[0] == len(bad), timeout=30)
    assert _stored(stack, [device["id"]])[0] == 0
