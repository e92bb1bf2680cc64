"""HTTPS ingest on a stack started with `sensorium up --tls`: exact counts over TLS,
authentication, and bad input of every shape answered with a clear error."""

from __future__ import annotations

import json
import socket
import ssl
import time
from collections.abc import Iterator
from functools import partial
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sensorium.bench import provision_devices, run_http_load
from tests.support import StackHandle, db_fetch, run_trio

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def tls_stack() -> Iterator[StackHandle]:
    # The fuzz test below sends one device's requests back to back: lift its rate limit
    # (test_api_auth checks the limit on the default stack).
    handle = StackHandle.create(
        extra_env={"SENSORIUM_INGEST__HTTP_REQUESTS_PER_DEVICE_PER_S": "1000"}
    )
    try:
        handle.up("--tls")
        yield handle
    finally:
        handle.down("--purge")


@pytest.fixture(scope="module")
def tls_context(tls_stack: StackHandle) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(tls_stack.state_dir / "tls" / "ca.pem"))


@pytest.fixture(scope="module")
def api(tls_stack: StackHandle, tls_context: ssl.SSLContext) -> Iterator[httpx.Client]:
    with httpx.Client(
        base_url=f"https://127.0.0.1:{tls_stack.ports['http']}", verify=tls_context, timeout=30
    ) as client:
        yield client


@pytest.fixture(scope="module")
def device(tls_stack: StackHandle) -> dict[str, Any]:
    return tls_stack.create_device("https-device")


def _post(api: httpx.Client, token: str, body: bytes) -> httpx.Response:
    return api.post(
        "/api/v1/telemetry",
        content=body,
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )


def test_tls_everywhere(
    tls_stack: StackHandle, api: httpx.Client, tls_context: ssl.SSLContext
) -> None:
    assert api.get("/healthz").status_code == 200
    with (
        socket.create_connection(("127.0.0.1", tls_stack.ports["mqtt_tls"]), timeout=5) as raw,
        tls_context.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
    ):
        assert tls.version() in ("TLSv1.2", "TLSv1.3")
    code, status = tls_stack.status()
    assert code == 0, status
    http = next(c for c in status["components"] if c["name"] == "http")
    assert http["url"].startswith("https://")


def test_thousand_devices_times_twenty_messages_over_https(
    tls_stack: StackHandle, tls_context: ssl.SSLContext
) -> None:
    fleet = run_trio(partial(provision_devices, tls_stack.db_url(), 1000, prefix="https"))
    result = run_trio(
        partial(
            run_http_load,
            fleet,
            base_url=f"https://127.0.0.1:{tls_stack.ports['http']}",
            messages=20,
            metrics=3,
            batch=5,
            concurrency=32,
            verify=tls_context,
        )
    )
    assert result.failures == 0, result.http_status
    rows = db_fetch(
        tls_stack.db_url(),
        """SELECT count(*) AS n, sum(r.value) AS total,
                  count(DISTINCT (r.device_key, r.metric_id, r.ts, r.seq)) AS distinct_n
           FROM readings r JOIN devices d ON d.key = r.device_key WHERE d.id = ANY($1)""",
        [d.id for d in fleet],
    )[0]
    # The answers came after commit: no waiting needed.
    assert rows["n"] == 1000 * 20 * 3 == rows["distinct_n"]
    assert rows["total"] == pytest.approx(result.value_sum, rel=1e-12)


def test_counts_duplicates_and_rejections_item_by_item(
    api: httpx.Client, device: dict[str, Any]
) -> None:
    now = int(time.time() * 1000)
    first = {"ts": now - 5000, "seq": 7, "metrics": {"temperature": 21.5, "humidity": 40.2}}
    response = _post(api, device["token"], json.dumps(first).encode())
    assert response.status_code == 200
    assert response.json() == {"accepted": 1, "duplicates": 0, "rejected": []}
    batch = [
        first,
        {"ts": now - 4000, "metrics": {"temperature": 22}},
        {"ts": "soon", "metrics": {"t": 1}},
        {"ts": now - 6000, "metrics": {"late": 1.5}},
    ]
    response = _post(api, device["token"], json.dumps(batch).encode())
    assert response.status_code == 200
    body = response.json()
    assert (body["accepted"], body["duplicates"]) == (2, 1)  # the late reading is kept
    assert [(r["index"], r["reason"]) for r in body["rejected"]] == [(2, "bad-timestamp")]


def test_reboot_restarting_seq_keeps_new_readings(
    api: httpx.Client, device: dict[str, Any]
) -> None:
    now = int(time.time() * 1000)
    before = [{"ts": now - 3000 + i, "seq": i, "metrics": {"counter": i}} for i in range(3)]
    after = [{"ts": now - 1000 + i, "seq": i, "metrics": {"counter": 10 + i}} for i in range(3)]
    assert _post(api, device["token"], json.dumps(before).encode()).json()["accepted"] == 3
    assert _post(api, device["token"], json.dumps(after).encode()).json()["accepted"] == 3
    assert _post(api, device["token"], json.dumps(after).encode()).json()["duplicates"] == 3


@pytest.mark.parametrize(
    ("body", "reason", "field"),
    [
        (b"{oops", "malformed-json", "malformed"),
        (b"42", "not-an-object", "payload"),
        (b'{"ts": 1764090000000, "metrics": {"t": true}}', "wrong-type", "metrics.t"),
        (b'{"ts": 1764090000000, "metrics": {"t": "1"}}', "wrong-type", "metrics.t"),
        (b'{"ts": 1764090000000, "metrics": {"T!": 1}}', "bad-metric-name", "metrics.T!"),
        (b'{"ts": 1764090000000, "metrics": {}}', "empty-metrics", "metrics"),
        (b'{"metrics": {"t": 1}}', "missing-field", "ts"),
        (b'{"ts": 1, "metrics": {"t": 1}}', "timestamp-too-old", "ts"),
        (b'{"ts": 99999999999999, "metrics": {"t": 1}}', "timestamp-in-future", "ts"),
        (b'{"ts": 1764090000000, "metrics": {"t": 1e400}}', "non-finite-value", "range"),
        (b'{"ts": 1764090000000, "seq": -3, "metrics": {"t": 1}}', "bad-seq", "seq"),
    ],
)
def test_bad_payload_is_problem_json_naming_the_field_and_a_dead_letter(
    tls_stack: StackHandle,
    api: httpx.Client,
    device: dict[str, Any],
    body: bytes,
    reason: str,
    field: str,
) -> None:
    response = _post(api, device["token"], body)
    assert response.status_code == 400
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["reason"] == reason
    assert field in problem["detail"]
    letters = db_fetch(
        tls_stack.db_url(),
        "SELECT reason FROM dead_letters WHERE device_id = $1 AND payload = $2",
        device["id"],
        body,
    )
    assert [r["reason"] for r in letters][-1] == reason


def test_wrong_or_missing_token_is_401(api: httpx.Client) -> None:
    assert _post(api, "not-a-token", b"{}").status_code == 401
    response = api.post("/api/v1/telemetry", content=b"{}")
    assert response.status_code == 401
    assert response.headers["content-type"] == "application/problem+json"


def test_oversize_payload_is_413(api: httpx.Client, device: dict[str, Any]) -> None:
    response = _post(api, device["token"], b"[" + b" " * 70_000 + b"]")
    assert response.status_code == 413
    assert response.headers["content-type"] == "application/problem+json"


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(
            st.sampled_from(["ts", "seq", "metrics", "t", "x"]) | st.text(max_size=4),
            children,
            max_size=4,
        )
    ),
    max_leaves=12,
)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(payload=json_values | st.binary(max_size=64))
def test_any_input_gets_a_clear_answer_never_a_server_error(
    api: httpx.Client, device: dict[str, Any], payload: Any
) -> None:
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    response = _post(api, device["token"], body)
    assert response.status_code in (200, 400), response.text
    if response.status_code == 400:
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["reason"]
    else:
        body_json = response.json()
        assert set(body_json) == {"accepted", "duplicates", "rejected"}
    assert api.get("/healthz").status_code == 200


def test_a_late_reading_from_years_ago_is_stored_in_its_own_day_only(
    tls_stack: StackHandle, api: httpx.Client, device: dict[str, Any]
) -> None:
    body = json.dumps(
        [
            {"ts": "2001-03-04T05:06:07Z", "metrics": {"temperature": 3.5}},
            {"ts": int(time.time() * 1000) - 1000, "metrics": {"temperature": 4}},
        ]
    )
    response = _post(api, device["token"], body.encode())
    assert response.status_code == 200 and response.json()["accepted"] == 2
    partitions = db_fetch(
        tls_stack.db_url(),
        """SELECT count(*) AS n FROM pg_inherits WHERE inhparent = 'readings'::regclass""",
    )[0]["n"]
    assert partitions < 30  # not one per day since 2001
    stored = db_fetch(
        tls_stack.db_url(),
        "SELECT value FROM readings_named WHERE device = $1 AND ts = '2001-03-04T05:06:07Z'",
        device["id"],
    )
    assert [r["value"] for r in stored] == [3.5]
