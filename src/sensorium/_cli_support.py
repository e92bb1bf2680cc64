"""What the `sensorium` command prints and how `up --detach` waits: kept apart from the
command definitions in cli.py."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import trio
import trio_asyncio
from rich.console import Console
from rich.table import Table

from sensorium.errors import SensoriumError

__all__ = [
    "detach",
    "err",
    "our_errors",
    "out",
    "print_report",
    "print_status",
    "run_async",
]

T = TypeVar("T")

out = Console(highlight=False)
err = Console(stderr=True, highlight=False)


def run_async(fn: Callable[[], Awaitable[T]]) -> T:
    """Run ``fn`` in trio with the asyncio bridge open (asyncpg needs it)."""

    async def main() -> T:
        async with trio_asyncio.open_loop():
            return await fn()

    return trio.run(main)


def print_report(report: Any) -> None:
    lines = [
        "Sensorium is up.",
        f"  HTTP API     {report.http_url}  (GET /healthz, /readyz, /metrics)",
        f"  MQTT         {report.mqtt_url}  (username = device id, password = device token)",
    ]
    if report.mqtt_tls_url:
        lines.append(f"  MQTT/TLS     {report.mqtt_tls_url}  (CA: {report.ca_file})")
    lines.append(f"  primary      {report.primary_url}")
    for index, url in enumerate(report.replica_urls, start=1):
        lines.append(f"  replica-{index}    {url}")
    lines.append(f"  admin        {report.admin_email}")
    if report.admin_password:
        lines.append(f"  password     {report.admin_password}  (shown once: keep it)")
    lines.append(f"  state        {report.state_dir}")
    lines.append("Stop with Ctrl-C (or `sensorium down` when detached).")
    print("\n".join(lines), flush=True)


def detach(
    stack: Any,
    *,
    config: Path | None,
    tls: bool,
    timeout: float,
    simulate: int = 0,
    with_prometheus: bool = False,
) -> int:
    """Start `up` in the background, wait until healthy, print where things are."""
    from sensorium.stack import EXIT_HEALTHY, collect_status, pid_alive, read_pid

    layout = stack.layout
    layout.create()
    child: subprocess.Popen[bytes] | None = None
    running = read_pid(layout.engine_pid_file)
    if pid_alive(running):
        started = stack.start_missing()
        err.print(
            f"sensorium up is already running (pid {running})"
            + (f"; started {', '.join(started)}" if started else "")
        )
    else:
        cmd = [sys.executable, "-m", "sensorium", "up", "--state-dir", str(layout.state_dir)]
        if config:
            cmd += ["--config", str(config)]
        if tls:
            cmd.append("--tls")
        if simulate:
            cmd += ["--simulate", str(simulate)]
        if with_prometheus:
            cmd.append("--with-prometheus")
        log_path = layout.log_dir / "sensorium.log"
        with log_path.open("ab") as log_file:
            child = subprocess.Popen(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=log_file,
                start_new_session=True,
                close_fds=True,
            )
        err.print(f"starting in the background (pid {child.pid}); log: {log_path}")
    deadline = time.monotonic() + timeout
    while True:
        status = run_async(lambda: collect_status(stack))
        if status.exit_code == EXIT_HEALTHY:
            break
        if child is not None and child.poll() is not None:
            log_tail = (layout.log_dir / "sensorium.log").read_text(errors="replace")[-3000:]
            err.print(f"sensorium up exited with code {child.returncode}:\n{log_tail}")
            return 1
        if time.monotonic() > deadline:
            err.print(f"the stack is not healthy after {timeout:.0f} s; see {layout.log_dir}")
            print_status(status)
            return 1
        time.sleep(0.5)
    password_file = layout.admin_password_file
    if password_file.exists():
        err.print(f"admin password (shown once): {password_file.read_text().strip()}")
        password_file.unlink()
    print_status(status)
    return 0


def print_status(status: Any) -> None:
    table = Table("component", "healthy", "pid", "url", "detail")
    for c in status.components:
        detail = c.get("error", "")
        if "replay_lag_s" in c:
            detail = f"{c.get('state')} lag {c['replay_lag_s']} s " + detail
        table.add_row(
            c["name"],
            "yes" if c["healthy"] else "no",
            str(c["pid"] or "-"),
            c["url"] or "-",
            detail.strip(),
        )
    out.print(table)


def our_errors(group: BaseExceptionGroup[BaseException]) -> list[SensoriumError] | None:
    """The SensoriumErrors inside ``group``, if that is all it holds."""
    matched, rest = group.split(SensoriumError)
    if matched is None or rest is not None:
        return None
    found: list[SensoriumError] = []

    def walk(exc: BaseException) -> None:
        if isinstance(exc, BaseExceptionGroup):
            for inner in exc.exceptions:
                walk(inner)
        elif isinstance(exc, SensoriumError):
            found.append(exc)

    walk(matched)
    return found
