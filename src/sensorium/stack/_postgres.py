"""One local PostgreSQL server of the embedded stack: the primary or a streaming replica.

The primary is made with initdb; each replica with pg_basebackup from the primary
(its own physical replication slot, hot standby, ``-R`` for the standby settings).
Servers run detached (their own session) and are stopped with ``pg_ctl -m fast``.
"""

from __future__ import annotations

import glob
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from sensorium.errors import MissingSystemPackage
from sensorium.stack._processes import (
    Account,
    pid_alive,
    read_pid,
    require_free_port,
    run_as,
)

__all__ = ["PostgresServer", "find_postgres_bin_dir"]

# Settings tuned for a write-heavy telemetry load on a small machine. Durability stays
# on (fsync, synchronous_commit): readings are acknowledged only after commit.
_SERVER_CONF = """\
# Written by sensorium; edit the settings, not this file.
listen_addresses = '127.0.0.1'
unix_socket_directories = ''
max_connections = 200
shared_buffers = {shared_buffers}
wal_level = replica
max_wal_senders = 10
max_replication_slots = 10
wal_keep_size = 1GB
hot_standby = on
hot_standby_feedback = on
max_wal_size = 4GB
checkpoint_timeout = 15min
checkpoint_completion_target = 0.9
log_min_messages = warning
log_line_prefix = '%m [%p] %q%a '
"""


def find_postgres_bin_dir(configured: Path | None = None) -> Path:
    """The folder holding initdb and pg_ctl (off PATH on Debian)."""
    if configured is not None:
        candidates = [configured]
    else:
        candidates = [Path(p) for p in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True)]
        on_path = shutil.which("initdb")
        if on_path:
            candidates.append(Path(on_path).resolve().parent)
    for folder in candidates:
        if all((folder / tool).exists() for tool in ("initdb", "pg_ctl", "pg_basebackup")):
            return folder
    raise MissingSystemPackage("initdb", "postgresql")


@dataclass(frozen=True, slots=True)
class PostgresServer:
    name: str  # "primary", "replica-1", ...
    port: int
    data_dir: Path
    log_file: Path
    account: Account
    bin_dir_setting: Path | None = None

    @property
    def slot_name(self) -> str:
        return self.name.replace("-", "_")

    @property
    def initialised(self) -> bool:
        return (self.data_dir / "PG_VERSION").exists()

    @property
    def pid(self) -> int | None:
        pid = read_pid(self.data_dir / "postmaster.pid")
        return pid if pid_alive(pid, name_contains="postgres") else None

    @property
    def running(self) -> bool:
        return self.pid is not None

    def _run(
        self,
        *args: str | os.PathLike[str],
        env: dict[str, str] | None = None,
        detach: bool = False,
        timeout: float = 120.0,
    ) -> str:
        tool, *rest = args
        result = run_as(
            self.account,
            [find_postgres_bin_dir(self.bin_dir_setting) / tool, *rest],
            cwd=self.data_dir.parent,
            env=env,
            detach=detach,
            timeout=timeout,
        )
        return result.stdout

    def init_primary(self, *, user: str, password: str, shared_buffers: str) -> None:
        """initdb with password (scram) logins over TCP and our server settings."""
        self.account.own(self.data_dir.parent, mode=0o755)
        self.account.own(self.log_file.parent, mode=0o755)
        pwfile = self.data_dir.parent / f".{self.name}.pw"
        self.account.own_file(pwfile, password + "\n")
        try:
            self._run(
                "initdb",
                "-D",
                self.data_dir,
                "-U",
                user,
                f"--pwfile={pwfile}",
                "--auth-local=trust",
                "--auth-host=scram-sha-256",
                "--encoding=UTF8",
                "--locale=C",
                "--no-instructions",
            )
        finally:
            pwfile.unlink(missing_ok=True)
        self.account.own_file(
            self.data_dir / "sensorium.conf",
            _SERVER_CONF.format(shared_buffers=shared_buffers),
        )
        with (self.data_dir / "postgresql.conf").open("a", encoding="utf-8") as conf:
            conf.write("\ninclude_if_exists = 'sensorium.conf'\n")

    def init_replica(self, primary: PostgresServer, *, user: str, password: str) -> None:
        """pg_basebackup from ``primary`` with a replication slot of our own."""
        self.account.own(self.data_dir.parent, mode=0o755)
        if self.data_dir.exists():
            shutil.rmtree(self.data_dir)  # a half-made copy from an interrupted run
        self._run(
            "pg_basebackup",
            "-h",
            "127.0.0.1",
            "-p",
            str(primary.port),
            "-U",
            user,
            "-D",
            self.data_dir,
            "-R",
            "-X",
            "stream",
            "-S",
            self.slot_name,
            "-C",
            "--no-password",
            "--checkpoint=fast",
            env={"PGPASSWORD": password},
            timeout=600.0,
        )

    def start(self) -> None:
        """Start the server and wait until it accepts connections."""
        require_free_port(self.port, self.name)
        self.account.own(self.log_file.parent, mode=0o755)
        options = f"-p {self.port} -c cluster_name={self.name}"
        self._run(
            "pg_ctl",
            "-D",
            self.data_dir,
            "-l",
            self.log_file,
            "-w",
            "-t",
            "120",
            "-o",
            options,
            "start",
            detach=True,
            timeout=150.0,
        )

    def stop(self, *, timeout: float = 60.0) -> None:
        """Fast shutdown: disconnect clients, checkpoint, exit."""
        if not self.running:
            return
        self._run(
            "pg_ctl",
            "-D",
            self.data_dir,
            "-m",
            "fast",
            "-w",
            "-t",
            str(int(timeout)),
            "stop",
            timeout=timeout + 10,
        )

    def url(self, *, user: str, password: str, dbname: str) -> str:
        return f"postgresql://{user}:{password}@127.0.0.1:{self.port}/{dbname}"
