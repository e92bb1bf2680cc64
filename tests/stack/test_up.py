"""`sensorium up` on the embedded default, end to end through the CLI."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
from pathlib import Path

import httpx
import pytest

from sensorium.storage import available_migrations
from tests.support import SENSORIUM, MqttClient, StackHandle, broker_accepts, db_fetch, wait_for

pytestmark = pytest.mark.slow


def test_status_shows_every_component_healthy_with_two_streaming_replicas(
    stack: StackHandle,
) -> None:
    code, status = stack.status()
    assert code == 0, status
    assert status["healthy"] is True
    names = [c["name"] for c in status["components"]]
    assert names == ["primary", "replica-1", "replica-2", "mqtt", "engine", "http"]
    for component in status["components"]:
        assert component["healthy"] is True, component
        assert isinstance(component["pid"], int)
    replicas = [c for c in status["components"] if c["name"].startswith("replica-")]
    assert [r["state"] for r in replicas] == ["streaming", "streaming"]
    assert all(isinstance(r["replay_lag_s"], float) for r in replicas)
    by_name = {c["name"]: c for c in status["components"]}
    assert by_name["mqtt"]["url"] == f"mqtt://127.0.0.1:{stack.ports['mqtt']}"
    assert by_name["http"]["url"] == stack.http_url
    assert by_name["primary"]["url"].startswith("postgresql://sensorium:")


def test_postgres_urls_work_with_psql_as_any_user(stack: StackHandle) -> None:
    for name in ("primary", "replica-1", "replica-2"):
        url = stack.component(name)["url"]
        result = subprocess.run(
            ["psql", url, "-tAc", "SELECT pg_is_in_recovery()"],
            capture_output=True,
            text=True,
            check=True,
        )
        assert result.stdout.strip() == ("f" if name == "primary" else "t")


def test_writes_on_the_primary_reach_both_replicas(stack: StackHandle) -> None:
    db_fetch(stack.db_url(), "INSERT INTO tenants (name) VALUES ('replication-check')")
    for replica in ("replica-1", "replica-2"):
        wait_for(
            lambda r=replica: db_fetch(
                stack.db_url(r), "SELECT 1 FROM tenants WHERE name = 'replication-check'"
            ),
            timeout=10,
        )


def test_healthz_readyz_and_metrics(stack: StackHandle) -> None:
    health = httpx.get(stack.http_url + "/healthz")
    assert health.status_code == 200 and health.json() == {"status": "ok"}
    ready = httpx.get(stack.http_url + "/readyz")
    assert ready.status_code == 200
    assert set(ready.json()["components"]) == {"primary", "replica-1", "replica-2", "mqtt"}
    metrics = httpx.get(stack.http_url + "/metrics")
    assert metrics.status_code == 200
    assert 'sensorium_info{version="' in metrics.text


def test_unknown_route_is_problem_json(stack: StackHandle) -> None:
    response = httpx.get(stack.http_url + "/no/such/route")
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["status"] == 404 and body["type"].endswith("/not-found")


def test_schema_is_migrated_with_partitioned_readings(stack: StackHandle) -> None:
    url = stack.db_url()
    versions = db_fetch(url, "SELECT version FROM schema_migrations ORDER BY version")
    assert [r["version"] for r in versions] == [m.version for m in available_migrations()]
    kind = db_fetch(url, "SELECT relkind::text FROM pg_class WHERE relname = 'readings'")
    assert kind[0]["relkind"] == "p"  # partitioned
    db_fetch(url, "SELECT ensure_readings_partitions('2026-01-01', '2026-01-03')")
    parts = db_fetch(
        url,
        """SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
           WHERE i.inhparent = 'readings'::regclass AND c.relname LIKE 'readings_202601%'
           ORDER BY 1""",
    )
    assert [p["relname"] for p in parts] == [
        "readings_20260101",
        "readings_20260102",
        "readings_20260103",
    ]
    # Idempotent, as the writer calls it on demand.
    db_fetch(url, "SELECT ensure_readings_partitions('2026-01-01', '2026-01-03')")
    for table in (
        "rollup_1m",
        "rollup_1m_delta",
        "rollup_1h",
        "rollup_1d",
        "device_ingest",
        "alert_rules",
        "alerts",
        "notification_outbox",
        "dead_letters",
        "metrics",
        "devices",
        "users",
        "tenants",
    ):
        assert db_fetch(url, f"SELECT count(*) AS n FROM {table}")[0]["n"] >= 0
    # The view for people names every stored reading of every existing device (a
    # deleted device's readings stay until retention takes them, unnamed).
    named = db_fetch(url, "SELECT count(*) AS n FROM readings_named")[0]["n"]
    assert (
        named
        == db_fetch(
            url, "SELECT count(*) AS n FROM readings WHERE device_key IN (SELECT key FROM devices)"
        )[0]["n"]
    )


def test_partitions_exist_ahead_of_time(stack: StackHandle) -> None:
    """The writer keeps yesterday's to the day after tomorrow's partitions ready."""
    import datetime as dt

    today = dt.datetime.now(dt.UTC).date()
    wanted = [
        f"readings_{(today + dt.timedelta(days=d)).strftime('%Y%m%d')}" for d in (-1, 0, 1, 2)
    ]
    found = wait_for(
        lambda: (
            {
                r["relname"]
                for r in db_fetch(
                    stack.db_url(), "SELECT relname FROM pg_class WHERE relname = ANY($1)", wanted
                )
            }
            == set(wanted)
        ),
        timeout=30,
    )
    assert found


def test_migrate_twice_applies_nothing_new(stack: StackHandle) -> None:
    result = stack.cli("migrate")
    assert "schema is up to date" in result.stdout


def test_admin_user_comes_from_settings(stack: StackHandle) -> None:
    rows = db_fetch(stack.db_url(), "SELECT email, role, password_hash FROM users")
    admin = next(r for r in rows if r["email"] == "admin@example.com")
    assert admin["role"] == "admin"
    assert admin["password_hash"].startswith("$argon2id$")


def test_device_logs_into_the_broker_and_publishes_only_under_its_own_topic(
    stack: StackHandle,
) -> None:
    device = stack.create_device("freezer")
    other = stack.create_device("meter")
    assert set(device) == {"id", "name", "tenant_id", "token", "tags"}
    port = stack.ports["mqtt"]
    secrets = stack.secrets

    wait_for(
        lambda: broker_accepts(port, device["id"], device["token"]), timeout=10
    )  # the broker re-reads its password file
    wrong = MqttClient(port, client_id="t-wrong", username=device["id"], password="nope")
    assert wrong.return_code == 5  # not authorised
    wrong.close()

    engine = MqttClient(
        port,
        client_id="t-engine",
        username=secrets["mqtt_engine_user"],
        password=secrets["mqtt_engine_password"],
    )
    assert engine.subscribe("devices/+/telemetry") == 1
    publisher = MqttClient(port, client_id="t-pub", username=device["id"], password=device["token"])
    publisher.publish(f"devices/{other['id']}/telemetry", b'{"spoofed": true}')
    publisher.publish(f"devices/{device['id']}/telemetry", b'{"own": true}')
    received = [(p.topic, p.payload) for p in engine.messages(timeout=1.0)]
    publisher.close()
    engine.close()
    assert received == [(f"devices/{device['id']}/telemetry", b'{"own": true}')]


def test_second_engine_on_the_same_database_is_refused(stack: StackHandle) -> None:
    env = {
        **stack.env,
        "SENSORIUM_DATABASE__PRIMARY_URL": stack.db_url(),
        "SENSORIUM_MQTT__URL": f"mqtt://127.0.0.1:{stack.ports['mqtt']}",
        "SENSORIUM_HTTP__PORT": "0",
        "SENSORIUM_AUTH__JWT_SECRET": stack.secrets["jwt_secret"],
    }
    result = subprocess.run(
        [*SENSORIUM, "run"], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 1
    assert "another engine already writes to this database" in result.stderr


def _readyz(stack: StackHandle) -> httpx.Response:
    return httpx.get(stack.http_url + "/readyz", timeout=10)


@pytest.mark.parametrize("component", ["replica-1", "replica-2", "mqtt", "primary"])
def test_readyz_names_a_stopped_component_and_up_starts_only_what_is_missing(
    stack: StackHandle, component: str
) -> None:
    pid = stack.component(component)["pid"]
    os.kill(pid, signal.SIGINT if component != "mqtt" else signal.SIGTERM)  # fast stop
    wait_for(lambda: _readyz(stack).status_code == 503, timeout=30)
    body = _readyz(stack).json()
    assert body["components"][component]["ready"] is False
    assert component in body["detail"]
    assert [name for name, c in body["components"].items() if not c["ready"]] == [component]
    code, _ = stack.status()
    assert code == 1  # degraded

    engine_pid = stack.component("engine")["pid"]
    result = stack.up()
    assert "already running" in result.stderr and component in result.stderr
    wait_for(lambda: _readyz(stack).status_code == 200, timeout=30)
    assert stack.component("engine")["pid"] == engine_pid


def test_port_in_use_is_a_clear_error_naming_it() -> None:
    handle = StackHandle.create()
    blocker = socket.socket()
    blocker.bind(("127.0.0.1", handle.ports["primary"]))
    blocker.listen()
    try:
        result = handle.cli("up", "--detach", "--ready-timeout", "60", check=False)
    finally:
        blocker.close()
        handle.down("--purge")
    assert result.returncode == 1
    assert f"port {handle.ports['primary']} (primary) is already in use" in result.stderr


def test_invalid_config_is_one_message_naming_the_field_and_exit_2(tmp_path: Path) -> None:
    env = {**os.environ, "SENSORIUM_HTTP__PORT": "eighty"}
    result = subprocess.run(
        [*SENSORIUM, "status", "--state-dir", str(tmp_path)],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 2
    assert "http.port (SENSORIUM_HTTP__PORT)" in result.stderr
    assert "Traceback" not in result.stderr


def test_status_of_a_stack_that_never_ran_is_stopped(tmp_path: Path) -> None:
    result = subprocess.run(
        [*SENSORIUM, "status", "--json", "--state-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 3
    assert json.loads(result.stdout) == {"healthy": False, "components": []}


def test_sigterm_stops_everything_and_the_next_up_finds_the_data() -> None:
    """A foreground `up`, stopped by SIGTERM: no process or pid file left behind."""
    handle = StackHandle.create()
    try:
        proc = subprocess.Popen(
            [*SENSORIUM, "up"],
            env=handle.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        wait_for(lambda: handle.status()[0] == 0, timeout=180)
        device = handle.create_device("survivor")
        pids = [c["pid"] for c in handle.status()[1]["components"]]
        proc.send_signal(signal.SIGTERM)
        stdout, stderr = proc.communicate(timeout=90)
        assert proc.returncode == 0, stderr
        assert "Sensorium is up." in stdout
        # JSON log lines, ready for ELK.
        lines = [json.loads(line) for line in stderr.splitlines() if line.startswith("{")]
        assert lines and all({"time", "level", "logger", "event"} <= set(line) for line in lines)
        for pid in pids:
            assert not Path(f"/proc/{pid}").exists() or _is_zombie(pid), pid
        assert not (handle.state_dir / "run" / "engine.pid").exists()
        services = json.loads(handle.cli("status", "--json", check=False).stdout)
        assert all(c["pid"] is None for c in services["components"])
        assert handle.status()[0] == 3

        handle.up()
        found = db_fetch(handle.db_url(), "SELECT name FROM devices WHERE id = $1", device["id"])
        assert [r["name"] for r in found] == ["survivor"]
    finally:
        handle.down("--purge")


def _is_zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


def test_up_simulate_runs_devices_beside_the_stack() -> None:
    handle = StackHandle.create()
    try:
        handle.up("--simulate", "20")
        url = handle.db_url()
        wait_for(
            lambda: db_fetch(url, "SELECT count(*) AS n FROM readings")[0]["n"] >= 20 * 3 * 2,
            timeout=60,
        )
        devices = db_fetch(url, "SELECT count(DISTINCT device_key) AS n FROM readings")
        assert devices[0]["n"] == 20
    finally:
        handle.down("--purge")


def test_run_without_a_token_key_is_a_clear_error(stack: StackHandle) -> None:
    env = {
        **stack.env,
        "SENSORIUM_DATABASE__PRIMARY_URL": stack.db_url(),
        "SENSORIUM_AUTH__JWT_SECRET": "too short",
    }
    result = subprocess.run(
        [*SENSORIUM, "run"], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 2
    assert "SENSORIUM_AUTH__JWT_SECRET" in result.stderr
