"""The embedded default of `sensorium up`: local PostgreSQL primary and replicas, Mosquitto."""

from sensorium.stack._bootstrap import bootstrap_database, drop_stale_slot, ensure_admin
from sensorium.stack._layout import Secrets, StateLayout
from sensorium.stack._mosquitto import MosquittoBroker, TlsFiles
from sensorium.stack._postgres import PostgresServer, find_postgres_bin_dir
from sensorium.stack._processes import (
    Account,
    pid_alive,
    port_is_free,
    raise_open_file_limit,
    read_pid,
    service_account,
    stop_pid,
    wait_until,
)
from sensorium.stack._stack import EmbeddedStack, StackUrls
from sensorium.stack._status import (
    EXIT_DEGRADED,
    EXIT_HEALTHY,
    EXIT_STOPPED,
    StackStatus,
    collect_status,
    read_engine_info,
)

__all__ = [
    "EXIT_DEGRADED",
    "EXIT_HEALTHY",
    "EXIT_STOPPED",
    "Account",
    "EmbeddedStack",
    "MosquittoBroker",
    "PostgresServer",
    "Secrets",
    "StackStatus",
    "StackUrls",
    "StateLayout",
    "TlsFiles",
    "bootstrap_database",
    "collect_status",
    "drop_stale_slot",
    "ensure_admin",
    "find_postgres_bin_dir",
    "pid_alive",
    "port_is_free",
    "raise_open_file_limit",
    "read_engine_info",
    "read_pid",
    "service_account",
    "stop_pid",
    "wait_until",
]
