"""Provisioning simulated devices, and waiting until the broker knows them."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import trio

from sensorium.bench._loadgen import DeviceCredentials, run_mqtt_load
from sensorium.sources import probe_broker
from sensorium.storage import connect, create_devices

__all__ = ["provision_devices", "simulate_forever", "wait_for_broker_login"]


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


def _load_fleet(path: Path) -> list[DeviceCredentials]:
    if not path.exists():
        return []
    return [DeviceCredentials(**d) for d in json.loads(path.read_text())]


def _save_fleet(path: Path, fleet: list[DeviceCredentials]) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        json.dump([{"id": d.id, "token": d.token} for d in fleet], out)


async def simulate_forever(
    primary_url: str,
    *,
    devices: int,
    host: str,
    port: int,
    tokens_file: Path,
    rate_per_device: float = 1.0,
) -> None:
    """`sensorium up --simulate N`: N devices publishing one message per second each
    (temperature, humidity, pressure) until cancelled. Their tokens are kept in
    ``tokens_file`` so a restarted stack reuses the same devices."""
    fleet = await trio.to_thread.run_sync(_load_fleet, tokens_file)
    if len(fleet) < devices:
        fleet += await provision_devices(primary_url, devices - len(fleet), prefix="demo")
        await trio.to_thread.run_sync(_save_fleet, tokens_file, fleet)
    fleet = fleet[:devices]
    await wait_for_broker_login(fleet[-1], host=host, port=port, timeout_s=60)
    round_messages = 60
    while True:
        start_ts = int(time.time() * 1000)
        await run_mqtt_load(
            fleet,
            port=port,
            host=host,
            messages=round_messages,
            rate=len(fleet) * rate_per_device,
            start_ts_ms=start_ts,
        )
