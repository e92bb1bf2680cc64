"""Provisioning simulated devices, and waiting until the broker knows them."""

from __future__ import annotations

import trio

from sensorium.bench._loadgen import DeviceCredentials
from sensorium.sources import probe_broker
from sensorium.storage import connect, create_devices

__all__ = ["provision_devices", "wait_for_broker_login"]


async def provision_devices(
    primary_url: str, count: int, *, tenant: str = "simulator", prefix: str = "sim"
) -> list[DeviceCredentials]:
    conn = await connect(primary_url)
    try:
        created = []
        for start in range(0, count, 5000):
            names = [f"{prefix}-{i}" for i in range(start, min(start + 5000, count))]
            created += await create_devices(conn, names=names, tenant=tenant, tags=["simulated"])
    finally:
        await conn.close()
    return [DeviceCredentials(d.id, d.token) for d in created]


async def wait_for_broker_login(
    device: DeviceCredentials, *, host: str, port: int, timeout_s: float = 30.0
) -> None:
    """The broker learns new devices within a second or two: wait until it does."""
    with trio.fail_after(timeout_s):
        while True:
            health = await probe_broker(host, port, username=device.id, password=device.token)
            if health.reachable:
                return
            await trio.sleep(0.2)
