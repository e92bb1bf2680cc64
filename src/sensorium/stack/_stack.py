"""The embedded default: a PostgreSQL primary, two streaming replicas and Mosquitto.

`EmbeddedStack` starts what is missing and stops what runs, in order: primary, then
replicas, then the broker; stopping goes the other way. It is synchronous (subprocesses
and files); the database bootstrap that needs a connection lives in `_bootstrap`.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from sensorium.config import Settings
from sensorium.logs import get_logger
from sensorium.stack._layout import Secrets, StateLayout
from sensorium.stack._mosquitto import MosquittoBroker, TlsFiles
from sensorium.stack._postgres import PostgresServer
from sensorium.stack._processes import Account, service_account
from sensorium.stack._prometheus import EmbeddedPrometheus
from sensorium.stack._tls import ensure_local_tls

__all__ = ["EmbeddedStack", "StackUrls"]

log = get_logger(__name__)


@dataclass(frozen=True, slots=True)
class StackUrls:
    primary: str
    replicas: list[str]
    mqtt: str


class EmbeddedStack:
    """The services of one state folder."""

    def __init__(self, settings: Settings, *, state_dir: Path | None = None) -> None:
        self.settings = settings
        self.layout = StateLayout(state_dir or settings.state_dir)

    @cached_property
    def pg_account(self) -> Account:
        return service_account("postgres")

    @cached_property
    def mqtt_account(self) -> Account:
        return service_account("mosquitto")

    @cached_property
    def services_root(self) -> Path:
        return self.layout.services_root(self.pg_account, self.mqtt_account)

    def _server(self, name: str, port: int) -> PostgresServer:
        pg_root = self.services_root / "pg"
        return PostgresServer(
            name=name,
            port=port,
            data_dir=pg_root / name,
            log_file=pg_root / "logs" / f"{name}.log",
            account=self.pg_account,
            bin_dir_setting=self.settings.stack.postgres_bin_dir,
        )

    @cached_property
    def primary(self) -> PostgresServer:
        return self._server("primary", self.settings.stack.primary_port)

    @cached_property
    def replicas(self) -> list[PostgresServer]:
        return [
            self._server(f"replica-{index}", port)
            for index, port in enumerate(self.settings.stack.replica_ports, start=1)
        ]

    @property
    def tls_files(self) -> TlsFiles | None:
        folder = self.layout.tls_dir
        files = TlsFiles(folder / "ca.pem", folder / "server.pem", folder / "server-key.pem")
        return files if files.ca_file.exists() else None

    def broker(self, *, tls: TlsFiles | None = None) -> MosquittoBroker:
        return MosquittoBroker(
            folder=self.services_root / "mosquitto",
            port=self.settings.stack.mqtt_port,
            account=self.mqtt_account,
            binary=self.settings.stack.mosquitto_bin,
            tls_port=self.settings.stack.mqtt_tls_port if tls else None,
            tls=tls,
        )

    def prometheus(self) -> EmbeddedPrometheus:
        return EmbeddedPrometheus(
            folder=self.services_root / "prometheus",
            port=self.settings.stack.prometheus_port,
            scrape_s=self.settings.stack.prometheus_scrape_s,
        )

    def secrets(self) -> Secrets:
        return self.layout.ensure_secrets()

    def urls(self, secrets: Secrets) -> StackUrls:
        def url(server: PostgresServer) -> str:
            return server.url(
                user=secrets.db_user, password=secrets.db_password, dbname=secrets.db_name
            )

        return StackUrls(
            primary=url(self.primary),
            replicas=[url(replica) for replica in self.replicas],
            mqtt=f"mqtt://127.0.0.1:{self.settings.stack.mqtt_port}",
        )

    # -- starting ---------------------------------------------------------------------

    def prepare(self, *, tls: bool = False) -> TlsFiles | None:
        """Create the state folder and secrets (and TLS files when asked)."""
        self.layout.create()
        self.secrets()
        # Ours, and open for the service accounts to enter their own folders below.
        self.services_root.mkdir(parents=True, exist_ok=True)
        self.services_root.chmod(0o755)
        if tls:
            return ensure_local_tls(self.layout.tls_dir, readers=[self.mqtt_account])
        return self.tls_files

    def start_primary(self) -> bool:
        """Start the primary (initdb first if new); return whether it was new."""
        secrets = self.secrets()
        created = False
        if not self.primary.initialised:
            log.info("initialising primary", data_dir=str(self.primary.data_dir))
            self.primary.init_primary(
                user=secrets.db_user,
                password=secrets.db_password,
                shared_buffers=self.settings.stack.shared_buffers,
            )
            created = True
        if not self.primary.running:
            self.primary.start()
            log.info("primary started", port=self.primary.port, pid=self.primary.pid)
        return created

    def start_replica(self, replica: PostgresServer) -> None:
        """Start one replica, cloning it from the primary first if it has no data."""
        secrets = self.secrets()
        if not replica.initialised:
            log.info("cloning replica", name=replica.name)
            replica.init_replica(self.primary, user=secrets.db_user, password=secrets.db_password)
        if not replica.running:
            replica.start()
            log.info("replica started", name=replica.name, port=replica.port, pid=replica.pid)

    def start_missing(self) -> list[str]:
        """Start the services of an existing stack that are not running (the engine
        runs and keeps the rest up to date); return their names."""
        started = []
        if self.primary.initialised and not self.primary.running:
            self.primary.start()
            started.append(self.primary.name)
        for replica in self.replicas:
            if replica.initialised and not replica.running:
                replica.start()
                started.append(replica.name)
        broker = self.broker(tls=self.tls_files)
        if broker.config_file.exists() and not broker.running:
            broker.start()
            started.append("mqtt")
        prometheus = self.prometheus()
        if prometheus.configured and not prometheus.running:
            prometheus.start()
            started.append("prometheus")
        return started

    def purge(self) -> None:
        """Delete every file of this stack (services must be stopped)."""
        shutil.rmtree(self.services_root, ignore_errors=True)
        shutil.rmtree(self.layout.state_dir, ignore_errors=True)

    # -- stopping ---------------------------------------------------------------------

    def stop_services(self) -> None:
        """Stop Prometheus, the broker, then the replicas, then the primary (each only if
        running)."""
        self.prometheus().stop()
        self.broker().stop()
        for replica in reversed(self.replicas):
            replica.stop()
        self.primary.stop()

    def any_service_running(self) -> bool:
        if not self.layout.state_dir.exists():
            return False
        servers = [self.primary, *self.replicas]
        return (
            self.broker().running
            or self.prometheus().running
            or any(server.running for server in servers)
        )
