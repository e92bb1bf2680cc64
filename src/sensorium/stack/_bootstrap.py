"""What `sensorium up` does once the primary runs: database, schema, admin user."""

from __future__ import annotations

from sensorium.logs import get_logger
from sensorium.stack._layout import Secrets
from sensorium.stack._postgres import PostgresServer
from sensorium.storage import (
    apply_migrations,
    connect,
    create_user,
    find_user_by_email,
    new_secret,
)

__all__ = ["bootstrap_database", "drop_stale_slot", "ensure_admin"]

log = get_logger(__name__)


async def bootstrap_database(primary: PostgresServer, secrets: Secrets) -> list[str]:
    """Create the database if it is missing and apply migrations; return what applied."""
    admin_url = primary.url(user=secrets.db_user, password=secrets.db_password, dbname="postgres")
    conn = await connect(admin_url)
    try:
        exists = await conn.fetchval(
            "SELECT 1 FROM pg_database WHERE datname = $1", secrets.db_name
        )
        if not exists:
            await conn.execute(f'CREATE DATABASE "{secrets.db_name}"')
            log.info("database created", name=secrets.db_name)
    finally:
        await conn.close()
    conn = await connect(
        primary.url(user=secrets.db_user, password=secrets.db_password, dbname=secrets.db_name)
    )
    try:
        applied = await apply_migrations(conn)
    finally:
        await conn.close()
    names = [f"{m.version:04d}_{m.name}" for m in applied]
    if names:
        log.info("migrations applied", migrations=names)
    return names


async def ensure_admin(primary_url: str, *, email: str, password: str | None) -> str | None:
    """Create the admin user if missing; return the password when we generated it."""
    conn = await connect(primary_url)
    try:
        if await find_user_by_email(conn, email) is not None:
            return None
        generated = None
        if password is None:
            generated = password = new_secret(12)
        await create_user(conn, email=email, password=password, role="admin", tenant="default")
        log.info("admin user created", email=email)
        return generated
    finally:
        await conn.close()


async def drop_stale_slot(primary: PostgresServer, secrets: Secrets, slot: str) -> None:
    """Drop a replication slot left by a replica whose data is gone, so it can be re-cloned."""
    conn = await connect(
        primary.url(user=secrets.db_user, password=secrets.db_password, dbname="postgres")
    )
    try:
        await conn.execute(
            """SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots
               WHERE slot_name = $1 AND NOT active""",
            slot,
        )
    finally:
        await conn.close()
