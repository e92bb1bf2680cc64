"""A fresh embedded stack for one bench run: `sensorium up --detach` on free ports in a
temporary state folder, removed afterwards (`down --purge`)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["BenchStack", "free_ports"]


def free_ports(count: int) -> list[int]:
    """Ports nobody listens on right now (chosen by the kernel)."""
    sockets = []
    for _ in range(count):
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        sockets.append(sock)
    ports = [sock.getsockname()[1] for sock in sockets]
    for sock in sockets:
        sock.close()
    return ports


@dataclass
class BenchStack:
    state_dir: Path
    env: dict[str, str]
    ports: dict[str, int]
    port_list: list[int] = field(default_factory=list)

    @classmethod
    def create(
        cls,
        extra_env: dict[str, str] | None = None,
        *,
        state_dir: Path | None = None,
        port_list: list[int] | None = None,
    ) -> BenchStack:
        """A stack in a new temporary folder on free ports, or in ``state_dir`` on
        ``port_list`` (a kept stack: its replicas know the primary by its port)."""
        primary, r1, r2, mqtt, mqtt_tls, http = port_list or free_ports(6)
        state_dir = state_dir or Path(tempfile.mkdtemp(prefix="sensorium-bench-"))
        env = {
            **os.environ,
            "SENSORIUM_STATE_DIR": str(state_dir),
            "SENSORIUM_STACK__PRIMARY_PORT": str(primary),
            "SENSORIUM_STACK__REPLICA_PORTS": json.dumps([r1, r2]),
            "SENSORIUM_STACK__MQTT_PORT": str(mqtt),
            "SENSORIUM_STACK__MQTT_TLS_PORT": str(mqtt_tls),
            "SENSORIUM_HTTP__PORT": str(http),
            "SENSORIUM_ADMIN_PASSWORD": "bench-admin-password",
            **(extra_env or {}),
        }
        ports = {"primary": primary, "mqtt": mqtt, "http": http}
        return cls(state_dir, env, ports, [primary, r1, r2, mqtt, mqtt_tls, http])

    def cli(self, *args: str) -> str:
        result = subprocess.run(
            [sys.executable, "-m", "sensorium", *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        if result.returncode not in (0, 1, 3):
            raise RuntimeError(f"sensorium {' '.join(args)}: {result.stderr[-2000:]}")
        return result.stdout

    def up(self) -> None:
        result = subprocess.run(
            [sys.executable, "-m", "sensorium", "up", "--detach"],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        if result.returncode != 0:
            raise RuntimeError(f"sensorium up failed: {result.stderr[-3000:]}")

    def down(self, *, purge: bool = True) -> None:
        subprocess.run(
            [sys.executable, "-m", "sensorium", "down", *(["--purge"] if purge else [])],
            env=self.env,
            capture_output=True,
            timeout=300,
            check=False,
        )

    def status(self) -> dict[str, Any]:
        loaded: dict[str, Any] = json.loads(self.cli("status", "--json"))
        return loaded

    def secrets(self) -> dict[str, str]:
        loaded: dict[str, str] = json.loads((self.state_dir / "secrets.json").read_text())
        return loaded

    @property
    def primary_url(self) -> str:
        s = self.secrets()
        return (
            f"postgresql://{s['db_user']}:{s['db_password']}@127.0.0.1:"
            f"{self.ports['primary']}/{s['db_name']}"
        )

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['http']}"
