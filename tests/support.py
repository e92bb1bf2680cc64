"""Helpers the tests share: a real embedded stack run through the `sensorium` CLI,
a minimal blocking MQTT client, and database access."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import asyncpg
import httpx

from sensorium.bench._stack import free_ports
from sensorium.sources.mqtt_codec import (
    CONNACK,
    PINGRESP,
    PUBLISH,
    SUBACK,
    Packet,
    encode_connect,
    encode_disconnect,
    encode_pingreq,
    encode_publish,
    encode_subscribe,
    parse_packets,
)

SENSORIUM = [sys.executable, "-m", "sensorium"]


def new_state_dir(prefix: str = "sensorium-test-") -> Path:
    """A fresh state folder. mkdtemp makes it 0700, which the services' accounts cannot
    enter: the stack must cope (it keeps their data under /var/lib/sensorium then)."""
    return Path(tempfile.mkdtemp(prefix=prefix))


@dataclass
class StackHandle:
    """One embedded stack started with `sensorium up --detach` on free ports."""

    state_dir: Path
    env: dict[str, str]
    ports: dict[str, int]
    status_json: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def create(cls, *, extra_env: dict[str, str] | None = None) -> StackHandle:
        primary, r1, r2, mqtt, mqtt_tls, http = free_ports(6)
        ports = {
            "primary": primary,
            "replica-1": r1,
            "replica-2": r2,
            "mqtt": mqtt,
            "mqtt_tls": mqtt_tls,
            "http": http,
        }
        state_dir = new_state_dir()
        env = {
            **os.environ,
            "SENSORIUM_STATE_DIR": str(state_dir),
            "SENSORIUM_STACK__PRIMARY_PORT": str(primary),
            "SENSORIUM_STACK__REPLICA_PORTS": json.dumps([r1, r2]),
            "SENSORIUM_STACK__MQTT_PORT": str(mqtt),
            "SENSORIUM_STACK__MQTT_TLS_PORT": str(mqtt_tls),
            "SENSORIUM_STACK__SHARED_BUFFERS": "128MB",
            "SENSORIUM_HTTP__PORT": str(http),
            "SENSORIUM_ADMIN_EMAIL": "admin@example.com",
            "SENSORIUM_ADMIN_PASSWORD": "correct horse battery staple",
            **(extra_env or {}),
        }
        return cls(state_dir=state_dir, env=env, ports=ports)

    def cli(
        self, *args: str, check: bool = True, timeout: float = 300.0, input: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [*SENSORIUM, *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            input=input,
            check=False,
        )
        if check and result.returncode != 0:
            raise AssertionError(
                f"sensorium {' '.join(args)} exited {result.returncode}:\n"
                f"{result.stdout}\n{result.stderr}"
            )
        return result

    def up(self, *extra: str) -> subprocess.CompletedProcess[str]:
        return self.cli("up", "--detach", *extra)

    def down(self, *extra: str) -> subprocess.CompletedProcess[str]:
        return self.cli("down", *extra, check=False)

    def status(self) -> tuple[int, dict[str, Any]]:
        result = self.cli("status", "--json", check=False)
        return result.returncode, json.loads(result.stdout)

    def component(self, name: str) -> dict[str, Any]:
        _, status = self.status()
        return next(c for c in status["components"] if c["name"] == name)

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['http']}"

    @property
    def secrets(self) -> dict[str, str]:
        loaded: dict[str, str] = json.loads((self.state_dir / "secrets.json").read_text())
        return loaded

    def db_url(self, name: str = "primary") -> str:
        s = self.secrets
        return (
            f"postgresql://{s['db_user']}:{s['db_password']}@127.0.0.1:"
            f"{self.ports[name]}/{s['db_name']}"
        )

    def create_device(self, name: str = "sensor") -> dict[str, Any]:
        created: dict[str, Any] = json.loads(self.cli("device", "create", name, "--json").stdout)
        return created


def wait_for(predicate: Any, *, timeout: float = 30.0, interval: float = 0.2) -> Any:
    """Poll until ``predicate()`` is truthy; return its value or fail the test."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        time.sleep(interval)


def run_trio(fn: Any, *args: Any) -> Any:
    """Run an async function in trio with the asyncio bridge open (for storage calls)."""
    import trio
    import trio_asyncio

    async def main() -> Any:
        async with trio_asyncio.open_loop():
            return await fn(*args)

    return trio.run(main)


def db_fetch(url: str, sql: str, *args: Any) -> list[asyncpg.Record]:
    """Run one query on a fresh connection (plain asyncio, outside any trio test)."""

    async def go() -> list[asyncpg.Record]:
        conn = await asyncpg.connect(url)
        try:
            rows: list[asyncpg.Record] = await conn.fetch(sql, *args)
            return rows
        finally:
            await conn.close()

    return asyncio.run(go())


def fresh_database(stack: StackHandle, prefix: str, *, migrated: bool = True) -> str:
    """A new database on the stack's primary (its URL), with every migration applied
    unless ``migrated`` is False: tests that write what the engine writes, apart."""
    name = f"{prefix}_{secrets.token_hex(4)}"
    db_fetch(stack.db_url(), f'CREATE DATABASE "{name}"')
    url = stack.db_url().rsplit("/", 1)[0] + "/" + name
    if migrated:
        from sensorium.storage import apply_migrations, connect

        async def migrate() -> None:
            conn = await connect(url)
            try:
                await apply_migrations(conn)
            finally:
                await conn.close()

        run_trio(migrate)
    return url


def new_user_token(stack: StackHandle, role: str, tenant: str) -> str:
    """A new user of ``tenant`` with ``role`` (made by the CLI), logged in."""
    email = f"{role}-{secrets.token_hex(4)}@{tenant}.example.com"
    password = secrets.token_urlsafe(12)
    stack.cli(
        "user", "create", "--email", email, "--role", role, "--tenant", tenant,
        "--password", password,
    )  # fmt: skip
    answer = httpx.post(
        f"{stack.http_url}/api/v1/auth/login", json={"email": email, "password": password}
    )
    assert answer.status_code == 200, answer.text
    token: str = answer.json()["access_token"]
    return token


@contextlib.contextmanager
def serve_http(handler: type[BaseHTTPRequestHandler]) -> Iterator[str]:
    """A real HTTP server on a free loopback port, in a thread, for as long as the
    block runs; yields its base URL (the tests' stand-ins for remote services)."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


class MqttClient:
    """A small blocking MQTT 3.1.1 client for tests (our own codec over a socket)."""

    def __init__(
        self,
        port: int,
        *,
        client_id: str,
        username: str | None = None,
        password: str | None = None,
        clean_session: bool = True,
    ) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        self.buffer = bytearray()
        self.pending: list[Packet] = []
        self.sock.sendall(
            encode_connect(
                client_id, username=username, password=password, clean_session=clean_session
            )
        )
        connack = self.next_packet()
        assert connack.kind == CONNACK
        self.return_code = connack.body[1]

    def next_packet(self, timeout: float = 5.0) -> Packet:
        self.sock.settimeout(timeout)
        while not self.pending:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("broker closed the connection")
            self.buffer += chunk
            used = parse_packets(self.buffer, self.pending)
            del self.buffer[:used]
        return self.pending.pop(0)

    def subscribe(self, topic: str, qos: int = 1) -> int:
        self.sock.sendall(encode_subscribe(1, topic, qos))
        suback = self.next_packet()
        assert suback.kind == SUBACK
        return suback.body[-1]

    def publish(self, topic: str, payload: bytes, *, qos: int = 0, packet_id: int = 1) -> None:
        self.sock.sendall(encode_publish(topic, payload, qos=qos, packet_id=packet_id))

    def messages(self, *, timeout: float) -> Iterator[Packet]:
        """Published messages until ``timeout`` passes with none."""
        while True:
            try:
                packet = self.next_packet(timeout)
            except TimeoutError:
                return
            if packet.kind == PUBLISH:
                yield packet

    def close(self) -> None:
        """PINGREQ, read everything up to the PINGRESP, then DISCONNECT: closing with
        unread PUBACKs in our buffer would send a TCP reset, and the broker could drop
        what it had not processed yet."""
        with contextlib.suppress(OSError, ConnectionError, TimeoutError):
            if self.return_code == 0:
                self.sock.sendall(encode_pingreq())
                while self.next_packet(timeout=10).kind != PINGRESP:
                    pass
            self.sock.sendall(encode_disconnect())
        self.sock.close()


def broker_accepts(port: int, username: str, password: str) -> bool:
    """Whether the broker lets this device log in (it learns new devices within ~1 s)."""
    client = MqttClient(port, client_id=f"probe-{username}", username=username, password=password)
    client.close()
    return client.return_code == 0
