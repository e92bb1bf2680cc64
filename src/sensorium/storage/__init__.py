"""PostgreSQL: pools, migrations, the device registry, probes (and the COPY writer)."""

from sensorium.storage._accounts import (
    ROLES,
    Role,
    User,
    create_user,
    ensure_tenant,
    find_user_by_email,
)
from sensorium.storage._bridge import Connection, Pool, connect, create_pool
from sensorium.storage._catalog import (
    DeviceDirectory,
    DeviceEntry,
    MetricCatalog,
    load_high_water_marks,
)
from sensorium.storage._copy import DeadLetterRow, ReadingBatch, batch_committed, write_batch
from sensorium.storage._credentials import (
    hash_password,
    hash_token,
    mosquitto_password_hash,
    new_secret,
    verify_mosquitto_password,
    verify_password,
)
from sensorium.storage._devices import (
    BrokerCredential,
    DevicePage,
    DeviceRecord,
    NewDevice,
    broker_credentials,
    create_device,
    create_devices,
    delete_device,
    get_device,
    list_devices,
    rotate_device_token,
    update_device,
)
from sensorium.storage._housekeeping import (
    HousekeepingOptions,
    compact_rollups,
    keep_house,
    prune_batch_ids,
)
from sensorium.storage._lease import EngineLease, acquire_engine_lease
from sensorium.storage._migrate import Migration, apply_migrations, available_migrations
from sensorium.storage._probes import (
    ReplicationState,
    ServerHealth,
    probe_server,
    replication_states,
)
from sensorium.storage._reads import ReadPools, ReadTarget
from sensorium.storage._series import Piece, fleet_sql, plan_pieces, series_sql
from sensorium.storage._sessions import (
    LoginRecord,
    RefreshRefused,
    find_login,
    issue_refresh_token,
    revoke_refresh_family,
    rotate_refresh_token,
)

__all__ = [
    "ROLES",
    "BrokerCredential",
    "Connection",
    "DeadLetterRow",
    "DeviceDirectory",
    "DeviceEntry",
    "DevicePage",
    "DeviceRecord",
    "EngineLease",
    "HousekeepingOptions",
    "LoginRecord",
    "MetricCatalog",
    "Migration",
    "NewDevice",
    "Piece",
    "Pool",
    "ReadPools",
    "ReadTarget",
    "ReadingBatch",
    "RefreshRefused",
    "ReplicationState",
    "Role",
    "ServerHealth",
    "User",
    "acquire_engine_lease",
    "apply_migrations",
    "available_migrations",
    "batch_committed",
    "broker_credentials",
    "compact_rollups",
    "connect",
    "create_device",
    "create_devices",
    "create_pool",
    "create_user",
    "delete_device",
    "ensure_tenant",
    "find_login",
    "find_user_by_email",
    "fleet_sql",
    "get_device",
    "hash_password",
    "hash_token",
    "issue_refresh_token",
    "keep_house",
    "list_devices",
    "load_high_water_marks",
    "mosquitto_password_hash",
    "new_secret",
    "plan_pieces",
    "probe_server",
    "prune_batch_ids",
    "replication_states",
    "revoke_refresh_family",
    "rotate_device_token",
    "rotate_refresh_token",
    "series_sql",
    "update_device",
    "verify_mosquitto_password",
    "verify_password",
    "write_batch",
]
