"""The embedded Prometheus of `sensorium up --with-prometheus` (Debian's package): it
scrapes the stack's HTTP server and evaluates deploy/prometheus/rules.yml, the very
rules a production Prometheus loads, on its own port and its own data folder."""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from sensorium.errors import MissingSystemPackage, StackError
from sensorium.stack._processes import (
    pid_alive,
    port_is_free,
    read_pid,
    require_free_port,
    stop_pid,
    wait_until,
)

__all__ = ["RULES_FILE", "EmbeddedPrometheus"]

# The rules production loads (deploy/prometheus/), from the source tree `make up` runs.
RULES_FILE = Path(__file__).resolve().parents[3] / "deploy" / "prometheus" / "rules.yml"


@dataclass(frozen=True, slots=True)
class EmbeddedPrometheus:
    folder: Path
    port: int
    scrape_s: float = 5.0
    binary: str = "prometheus"

    @property
    def config_file(self) -> Path:
        return self.folder / "prometheus.yml"

    @property
    def pid_file(self) -> Path:
        return self.folder / "prometheus.pid"

    @property
    def log_file(self) -> Path:
        return self.folder / "prometheus.log"

    @property
    def pid(self) -> int | None:
        pid = read_pid(self.pid_file)
        return pid if pid_alive(pid, name_contains="prometheus") else None

    @property
    def running(self) -> bool:
        return self.pid is not None

    @property
    def configured(self) -> bool:
        return self.config_file.exists()

    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def write_config(self, *, target: str) -> None:
        """Scrape ``target`` (host:port of the stack's HTTP server) every ``scrape_s``."""
        if not RULES_FILE.exists():
            raise StackError(f"the alert rules are missing: {RULES_FILE}")
        self.folder.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(RULES_FILE, self.folder / "rules.yml")
        self.config_file.write_text(
            "# Written by sensorium up --with-prometheus; edit the settings, not this file.\n"
            "global:\n"
            f"  scrape_interval: {self.scrape_s:g}s\n"
            f"  evaluation_interval: {self.scrape_s:g}s\n"
            "rule_files:\n"
            "  - rules.yml\n"
            "scrape_configs:\n"
            "  - job_name: sensorium\n"
            "    static_configs:\n"
            f'      - targets: ["{target}"]\n',
            encoding="utf-8",
        )

    def start(self, *, timeout: float = 30.0) -> None:
        require_free_port(self.port, "prometheus")
        binary = shutil.which(self.binary)
        if binary is None:
            raise MissingSystemPackage("prometheus", "prometheus")
        with self.log_file.open("ab") as log:
            process = subprocess.Popen(
                [
                    binary,
                    f"--config.file={self.config_file}",
                    f"--storage.tsdb.path={self.folder / 'data'}",
                    f"--web.listen-address=127.0.0.1:{self.port}",
                    "--storage.tsdb.retention.time=7d",
                ],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                start_new_session=True,
                close_fds=True,
            )
        self.pid_file.write_text(f"{process.pid}\n", encoding="utf-8")
        if not wait_until(lambda: not port_is_free(self.port), timeout=timeout):
            tail = self.log_file.read_text(errors="replace")[-2000:]
            raise StackError(f"prometheus did not come up on port {self.port}: {tail}")

    def stop(self, *, timeout: float = 15.0) -> None:
        pid = self.pid
        if pid is not None:
            stop_pid(pid, timeout=timeout)
