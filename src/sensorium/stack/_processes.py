"""Process plumbing for the embedded stack: accounts, pids, ports, limits.

PostgreSQL refuses to run as root and Mosquitto drops to its own user, so when we run
as root each service runs as its Debian package's system account, in folders that
account owns and can reach (DEPENDENCIES.md, pitfall 10).
"""

from __future__ import annotations

import contextlib
import os
import pwd
import resource
import signal
import socket
import stat
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from sensorium.errors import PortInUse, StackError

__all__ = [
    "Account",
    "pid_alive",
    "port_is_free",
    "raise_open_file_limit",
    "read_pid",
    "require_free_port",
    "run_as",
    "service_account",
    "stop_pid",
    "wait_until",
]


@dataclass(frozen=True, slots=True)
class Account:
    """Who a service runs as: a system account when we are root, else ourselves."""

    name: str
    uid: int
    gid: int

    @property
    def is_self(self) -> bool:
        return self.uid == os.geteuid()

    def can_reach(self, path: Path) -> bool:
        """Whether this account may traverse every folder above ``path``."""
        if self.uid == 0:
            return True
        for folder in [*reversed(path.resolve().parents)]:
            info = folder.stat()
            if info.st_uid == self.uid:
                needed = stat.S_IXUSR
            elif info.st_gid == self.gid:
                needed = stat.S_IXGRP
            else:
                needed = stat.S_IXOTH
            if not info.st_mode & needed:
                return False
        return True

    def own(self, path: Path, *, mode: int = 0o700) -> Path:
        """Create ``path`` (if needed) owned by this account with ``mode``."""
        path.mkdir(parents=True, exist_ok=True)
        if not self.is_self:
            os.chown(path, self.uid, self.gid)
        path.chmod(mode)
        return path

    def own_file(self, path: Path, content: str, *, mode: int = 0o600) -> None:
        """Write ``content`` atomically into ``path``, owned by this account."""
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(content, encoding="utf-8")
        tmp.chmod(mode)
        if not self.is_self:
            os.chown(tmp, self.uid, self.gid)
        tmp.replace(path)


def service_account(system_user: str) -> Account:
    """The account a service runs as: ``system_user`` when we are root, else us."""
    if os.geteuid() != 0:
        me = pwd.getpwuid(os.geteuid())
        return Account(me.pw_name, me.pw_uid, me.pw_gid)
    try:
        entry = pwd.getpwnam(system_user)
    except KeyError:
        raise StackError(
            f"the system user {system_user!r} does not exist; it comes with the Debian "
            f"package of the service (apt-get install -y {system_user})"
        ) from None
    return Account(entry.pw_name, entry.pw_uid, entry.pw_gid)


def run_as(
    account: Account,
    cmd: Sequence[str | os.PathLike[str]],
    *,
    cwd: Path,
    env: dict[str, str] | None = None,
    timeout: float = 120.0,
    detach: bool = False,
) -> subprocess.CompletedProcess[str]:
    """Run ``cmd`` as ``account``; raise `StackError` with its output when it fails.

    ``detach`` puts what it starts in a new session, so that a Ctrl-C at the terminal
    reaches only us, and we stop the services in order.
    """
    full_env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C.UTF-8"}
    full_env.update(env or {})
    try:
        result = subprocess.run(
            [os.fspath(part) for part in cmd],
            cwd=cwd,
            env=full_env,
            user=None if account.is_self else account.uid,
            group=None if account.is_self else account.gid,
            extra_groups=None if account.is_self else [],
            capture_output=True,
            text=True,
            timeout=timeout,
            start_new_session=detach,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise StackError(
            f"{Path(os.fspath(cmd[0])).name} did not finish in {timeout:.0f} s"
        ) from exc
    if result.returncode != 0:
        output = (result.stderr or result.stdout).strip()
        raise StackError(
            f"{Path(os.fspath(cmd[0])).name} failed (exit {result.returncode}): {output[-2000:]}"
        )
    return result


def read_pid(pid_file: Path) -> int | None:
    """The pid on the first line of ``pid_file``, if the file exists and holds one."""
    try:
        first = pid_file.read_text(encoding="utf-8").split("\n", 1)[0].strip()
    except (FileNotFoundError, PermissionError):
        return None
    return int(first) if first.isdigit() else None


def pid_alive(pid: int | None, *, name_contains: str | None = None) -> bool:
    """Whether ``pid`` runs (and, to guard against pid reuse, is the program we think)."""
    if pid is None or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    try:
        status = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    if status.rsplit(")", 1)[-1].split()[0] == "Z":
        return False
    if name_contains is None:
        return True
    with contextlib.suppress(FileNotFoundError):
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
        return name_contains.encode() in cmdline
    return False


def stop_pid(pid: int, *, sig: int = signal.SIGTERM, timeout: float = 30.0) -> bool:
    """Send ``sig`` and wait for the process to go; SIGKILL it past ``timeout``.

    Returns whether it stopped before the deadline (False: it had to be killed).
    """
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)
    if wait_until(lambda: not pid_alive(pid), timeout=timeout):
        return True
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    wait_until(lambda: not pid_alive(pid), timeout=5.0)
    return False


def wait_until(predicate: Callable[[], bool], *, timeout: float, interval: float = 0.1) -> bool:
    """Poll ``predicate`` until it holds or ``timeout`` passes (for synchronous CLI code)."""
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def require_free_port(port: int, component: str, host: str = "127.0.0.1") -> None:
    if not port_is_free(port, host):
        raise PortInUse(port, component)


def raise_open_file_limit(wanted: int = 1_048_576) -> int:
    """Raise RLIMIT_NOFILE toward ``wanted`` (a thousand devices need more than 1024).

    Children inherit the limit, so the broker and PostgreSQL get it too.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if os.geteuid() == 0 and hard != resource.RLIM_INFINITY and hard < wanted:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, wanted))
            return wanted
    if soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        return target
    return soft
