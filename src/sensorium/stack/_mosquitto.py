"""The embedded Mosquitto broker: generated config, password file and ACLs.

Devices log in with username = device id and password = device token, and may publish
only under ``devices/<own id>/``; the engine's own user may read every device's
telemetry. The password file is regenerated from the devices table whenever broker
credentials change, and the broker re-reads it on SIGHUP.

Limits follow DEPENDENCIES.md (pitfalls 8 and 9): Mosquitto drops QoS 1 messages past
``max_queued_messages`` (1000 by default) without telling the publisher, and holds a
client to 20 unacknowledged messages (``max_inflight_messages``), which would starve an
engine that acknowledges only after commit.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from sensorium.errors import MissingSystemPackage, StackError
from sensorium.stack._processes import (
    Account,
    pid_alive,
    port_is_free,
    read_pid,
    require_free_port,
    stop_pid,
    wait_until,
)
from sensorium.storage import BrokerCredential, mosquitto_password_hash

__all__ = ["MosquittoBroker", "TlsFiles"]

# Per client. The engine's persistent session must be able to hold a backlog of
# minutes at full rate while the engine restarts; devices publish and queue nothing.
MAX_QUEUED_MESSAGES = 5_000_000
MAX_QUEUED_BYTES = 2 * 1024**3
# Larger than the writer's batches, so PUBACK-after-commit never starves the engine.
MAX_INFLIGHT_MESSAGES = 20_000
# Payloads larger than the engine's limit still reach it, to be dead-lettered with a
# reason; only absurd ones are cut by the broker.
MAX_PACKET_SIZE = 4 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class TlsFiles:
    ca_file: Path
    cert_file: Path
    key_file: Path


@dataclass(frozen=True, slots=True)
class MosquittoBroker:
    folder: Path
    port: int
    account: Account
    binary: str = "mosquitto"
    tls_port: int | None = None
    tls: TlsFiles | None = None

    @property
    def config_file(self) -> Path:
        return self.folder / "mosquitto.conf"

    @property
    def password_file(self) -> Path:
        return self.folder / "passwd"

    @property
    def acl_file(self) -> Path:
        return self.folder / "acl"

    @property
    def pid_file(self) -> Path:
        return self.folder / "mosquitto.pid"

    @property
    def log_file(self) -> Path:
        return self.folder / "mosquitto.log"

    @property
    def pid(self) -> int | None:
        pid = read_pid(self.pid_file)
        return pid if pid_alive(pid, name_contains="mosquitto") else None

    @property
    def running(self) -> bool:
        return self.pid is not None

    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    def binary_path(self) -> str:
        found = shutil.which(self.binary) or shutil.which(self.binary, path="/usr/sbin:/sbin")
        if found is None:
            raise MissingSystemPackage("mosquitto", "mosquitto")
        return found

    def write_config(self, *, engine_user: str) -> None:
        self.account.own(self.folder, mode=0o700)
        self.account.own(self.folder / "data", mode=0o700)
        lines = [
            "# Written by sensorium; edit the settings, not this file.",
            f"pid_file {self.pid_file}",
            "persistence true",
            f"persistence_location {self.folder / 'data'}/",
            "autosave_interval 30",
            f"log_dest file {self.log_file}",
            "log_type error",
            "log_type warning",
            "log_type notice",
            "log_timestamp_format %Y-%m-%dT%H:%M:%S",
            "per_listener_settings false",
            "allow_anonymous false",
            f"password_file {self.password_file}",
            f"acl_file {self.acl_file}",
            f"max_queued_messages {MAX_QUEUED_MESSAGES}",
            f"max_queued_bytes {MAX_QUEUED_BYTES}",
            f"max_inflight_messages {MAX_INFLIGHT_MESSAGES}",
            f"max_packet_size {MAX_PACKET_SIZE}",
            "persistent_client_expiration 14d",
            "set_tcp_nodelay true",
        ]
        if os.geteuid() == 0:
            lines.append(f"user {self.account.name}")
        lines += ["", f"listener {self.port} 127.0.0.1", "protocol mqtt"]
        if self.tls is not None and self.tls_port is not None:
            lines += [
                "",
                f"listener {self.tls_port} 127.0.0.1",
                "protocol mqtt",
                f"cafile {self.tls.ca_file}",
                f"certfile {self.tls.cert_file}",
                f"keyfile {self.tls.key_file}",
                "tls_version tlsv1.2",
            ]
        self.account.own_file(self.config_file, "\n".join(lines) + "\n")
        # Devices write only under their own topic; the engine reads them all.
        self.account.own_file(
            self.acl_file,
            f"user {engine_user}\n"
            "topic read devices/+/telemetry\n"
            # The bench's baselines: devices publish under .../bench (broker only) and
            # .../paho (paho + COPY), which the engine does not subscribe to, and a
            # bare subscriber or the paho script reads them.
            "topic read devices/+/bench\n"
            "topic read devices/+/paho\n"
            "topic read $SYS/#\n"
            "\n"
            "pattern write devices/%u/#\n",
        )

    def write_passwords(
        self, devices: Iterable[BrokerCredential], *, engine_user: str, engine_password: str
    ) -> int:
        """Regenerate the password file; return how many logins it holds."""
        lines = [f"{engine_user}:{mosquitto_password_hash(engine_password)}"]
        lines += [f"{cred.username}:{cred.password_hash}" for cred in devices]
        self.account.own_file(self.password_file, "\n".join(lines) + "\n")
        return len(lines)

    def reload(self) -> None:
        """Make the broker re-read its password and ACL files (SIGHUP)."""
        pid = self.pid
        if pid is not None:
            os.kill(pid, signal.SIGHUP)

    def start(self, *, timeout: float = 15.0) -> None:
        require_free_port(self.port, "mqtt")
        if self.tls is not None and self.tls_port is not None:
            require_free_port(self.tls_port, "mqtt-tls")
        binary = self.binary_path()
        # Mosquitto starts as root and drops to `user` itself, so it is started as is.
        result = subprocess.run(
            [binary, "-c", str(self.config_file), "-d"],
            capture_output=True,
            text=True,
            start_new_session=True,
            timeout=timeout,
            check=False,
        )
        if result.returncode != 0:
            raise StackError(f"mosquitto failed to start: {result.stderr.strip()}")
        if not wait_until(lambda: self.running and not port_is_free(self.port), timeout=timeout):
            log = (
                self.log_file.read_text(errors="replace")[-2000:] if self.log_file.exists() else ""
            )
            raise StackError(f"mosquitto did not come up on port {self.port}: {log}")

    def stop(self, *, timeout: float = 15.0) -> None:
        pid = self.pid
        if pid is not None:
            stop_pid(pid, timeout=timeout)
