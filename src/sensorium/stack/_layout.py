"""Where the embedded stack keeps its state, and the secrets it made once.

<state dir>/                     owned by whoever runs `sensorium up`
    secrets.json                 database and broker passwords (mode 0600)
    run/engine.pid, up.lock      the running `sensorium up`
    logs/sensorium.log           output of a detached `up`
    tls/                         local CA and certificates (`up --tls`)
<services root>/                 <state dir>/services, or a folder under
    pg/primary, pg/replica-N     /var/lib/sensorium when the services' system
    pg/logs/                     accounts cannot reach the state dir
    mosquitto/                   (e.g. under /root or /tmp/pytest-of-root)
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from sensorium.errors import AlreadyRunning
from sensorium.stack._processes import Account
from sensorium.storage import new_secret

__all__ = ["Secrets", "StateLayout"]

FALLBACK_SERVICES_ROOT = Path("/var/lib/sensorium")


@dataclass(frozen=True, slots=True)
class Secrets:
    db_user: str
    db_password: str
    db_name: str
    mqtt_engine_user: str
    mqtt_engine_password: str
    # Signs the API's access tokens (HS256); states made before it existed get one
    # the next time they start.
    jwt_secret: str = ""


class StateLayout:
    """The paths of one state folder."""

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir.absolute()

    @property
    def run_dir(self) -> Path:
        return self.state_dir / "run"

    @property
    def engine_pid_file(self) -> Path:
        return self.run_dir / "engine.pid"

    @property
    def engine_info_file(self) -> Path:
        return self.run_dir / "engine.json"

    @property
    def admin_password_file(self) -> Path:
        """A generated admin password, for a detaching `up` to print once and delete."""
        return self.run_dir / "admin-password.once"

    @property
    def lock_file(self) -> Path:
        return self.run_dir / "up.lock"

    @property
    def log_dir(self) -> Path:
        return self.state_dir / "logs"

    @property
    def tls_dir(self) -> Path:
        return self.state_dir / "tls"

    @property
    def secrets_file(self) -> Path:
        return self.state_dir / "secrets.json"

    @contextmanager
    def hold_up_lock(self) -> Iterator[None]:
        """Be the one `sensorium up` of this state folder while the block runs.

        The lock is an flock, so it dies with the process (kill -9 included); the pid
        file it guards is removed on the way out.
        """
        self.create()
        fd = os.open(self.lock_file, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                pid = (
                    self.engine_pid_file.read_text().strip()
                    if self.engine_pid_file.exists()
                    else "?"
                )
                raise AlreadyRunning(
                    f"sensorium up is already running for {self.state_dir} (pid {pid})"
                ) from None
            self.engine_pid_file.write_text(f"{os.getpid()}\n", encoding="utf-8")
            try:
                yield
            finally:
                for path in (self.engine_pid_file, self.engine_info_file):
                    path.unlink(missing_ok=True)
        finally:
            os.close(fd)

    def create(self) -> None:
        for folder in (self.state_dir, self.run_dir, self.log_dir):
            folder.mkdir(parents=True, exist_ok=True)
        self.state_dir.chmod(0o755)

    def services_root(self, *accounts: Account) -> Path:
        """Where the services keep their data: inside the state folder when their
        accounts can reach it, else a stable folder of its own under /var/lib."""
        inside = self.state_dir / "services"
        if inside.exists() or all(account.can_reach(self.state_dir) for account in accounts):
            return inside
        digest = hashlib.sha256(os.fsencode(self.state_dir.resolve())).hexdigest()[:16]
        return FALLBACK_SERVICES_ROOT / digest

    def load_secrets(self) -> Secrets | None:
        if not self.secrets_file.exists():
            return None
        return Secrets(**json.loads(self.secrets_file.read_text(encoding="utf-8")))

    def ensure_secrets(self) -> Secrets:
        """The stack's passwords, made once and kept (mode 0600) for every later run."""
        existing = self.load_secrets()
        if existing is not None and existing.jwt_secret:
            return existing
        if existing is not None:
            secrets = replace(existing, jwt_secret=new_secret(48))
        else:
            secrets = Secrets(
                db_user="sensorium",
                db_password=new_secret(18),
                db_name="sensorium",
                mqtt_engine_user="sensorium-engine",
                mqtt_engine_password=new_secret(18),
                jwt_secret=new_secret(48),
            )
        tmp = self.secrets_file.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            json.dump(asdict(secrets), out, indent=2)
        tmp.replace(self.secrets_file)
        return secrets
