"""`sensorium status`: every component's endpoint, pid, health and replica lag.

The JSON shape is public (DESIGN.md): ``{"healthy": bool, "components": [{"name",
"url", "pid", "healthy", "replay_lag_s" (replicas)}]}``; we add ``"state"`` to replicas
(``streaming`` when all is well) and ``"error"`` where something is wrong.
"""

from __future__ import annotations

import json
import ssl
from dataclasses import dataclass
from typing import Any

import httpx
import trio

from sensorium.sources import probe_broker
from sensorium.stack._processes import pid_alive, read_pid
from sensorium.stack._stack import EmbeddedStack
from sensorium.storage import probe_server, replication_states

__all__ = [
    "EXIT_DEGRADED",
    "EXIT_HEALTHY",
    "EXIT_STOPPED",
    "StackStatus",
    "collect_status",
    "read_engine_info",
]

EXIT_HEALTHY, EXIT_DEGRADED, EXIT_STOPPED = 0, 1, 3


@dataclass(frozen=True, slots=True)
class StackStatus:
    components: list[dict[str, Any]]

    @property
    def healthy(self) -> bool:
        return bool(self.components) and all(c["healthy"] for c in self.components)

    @property
    def stopped(self) -> bool:
        return all(c["pid"] is None for c in self.components)

    @property
    def exit_code(self) -> int:
        if self.healthy:
            return EXIT_HEALTHY
        return EXIT_STOPPED if self.stopped else EXIT_DEGRADED

    def as_json(self) -> dict[str, Any]:
        return {"healthy": self.healthy, "components": self.components}


def read_engine_info(stack: EmbeddedStack) -> dict[str, Any]:
    """What the running `up` wrote about itself (pid, HTTP URL), if it runs."""
    pid = read_pid(stack.layout.engine_pid_file)
    if not pid_alive(pid):
        return {}
    info_file = stack.layout.run_dir / "engine.json"
    try:
        info: dict[str, Any] = json.loads(info_file.read_text(encoding="utf-8"))
    except (FileNotFoundError, json.JSONDecodeError):
        info = {}
    info["pid"] = pid
    return info


async def _http_healthy(url: str, ca_file: str | None) -> tuple[bool, str]:
    verify: ssl.SSLContext | bool = ssl.create_default_context(cafile=ca_file) if ca_file else True
    try:
        async with httpx.AsyncClient(timeout=2.0, verify=verify) as client:
            response = await client.get(url + "/healthz")
    except httpx.HTTPError as exc:
        return False, f"{type(exc).__name__}: {exc}"
    return (
        response.status_code == 200,
        "" if response.status_code == 200 else f"HTTP {response.status_code}",
    )


async def collect_status(stack: EmbeddedStack) -> StackStatus:
    """Probe every component of the embedded stack (runs inside trio-asyncio)."""
    secrets = stack.layout.load_secrets()
    if secrets is None:
        return StackStatus(components=[])
    urls = stack.urls(secrets)
    components: list[dict[str, Any]] = []

    primary_pid = stack.primary.pid
    primary: dict[str, Any] = {"name": "primary", "url": urls.primary, "pid": primary_pid}
    slots = {}
    if primary_pid is not None:
        health = await probe_server(urls.primary)
        primary["healthy"] = health.reachable and not health.in_recovery
        if not health.reachable:
            primary["error"] = health.error
        else:
            try:
                slots = {s.slot: s for s in await replication_states(urls.primary)}
            except Exception as exc:
                primary["error"] = f"cannot read replication state: {exc}"
    else:
        primary["healthy"] = False
        primary["error"] = "not running"
    components.append(primary)

    for server, url in zip(stack.replicas, urls.replicas, strict=True):
        pid = server.pid
        entry: dict[str, Any] = {"name": server.name, "url": url, "pid": pid}
        slot = slots.get(server.slot_name)
        entry["state"] = slot.state if slot else "unknown"
        entry["replay_lag_s"] = round(slot.replay_lag_s, 3) if slot else None
        if pid is None:
            entry.update(healthy=False, error="not running")
        else:
            health = await probe_server(url)
            entry["healthy"] = (
                health.reachable and health.in_recovery and entry["state"] == "streaming"
            )
            if not health.reachable:
                entry["error"] = health.error
            elif entry["state"] != "streaming":
                entry["error"] = f"replication state is {entry['state']}"
        components.append(entry)

    broker = stack.broker()
    mqtt: dict[str, Any] = {"name": "mqtt", "url": urls.mqtt, "pid": broker.pid}
    if broker.pid is None:
        mqtt.update(healthy=False, error="not running")
    else:
        broker_health = await probe_broker(
            "127.0.0.1",
            broker.port,
            username=secrets.mqtt_engine_user,
            password=secrets.mqtt_engine_password,
        )
        mqtt["healthy"] = broker_health.reachable
        if not broker_health.reachable:
            mqtt["error"] = broker_health.error
    components.append(mqtt)

    engine = read_engine_info(stack)
    engine_pid = engine.get("pid")
    components.append(
        {
            "name": "engine",
            "url": None,
            "pid": engine_pid,
            "healthy": engine_pid is not None,
            **({} if engine_pid else {"error": "not running"}),
        }
    )
    http_url = (
        engine.get("http_url") or f"http://{stack.settings.http.host}:{stack.settings.http.port}"
    )
    http: dict[str, Any] = {"name": "http", "url": http_url, "pid": engine_pid}
    if engine_pid is None:
        http.update(healthy=False, error="not running")
    else:
        with trio.move_on_after(5):
            ok, error = await _http_healthy(http_url, engine.get("ca_file"))
            http["healthy"] = ok
            if error:
                http["error"] = error
        http.setdefault("healthy", False)
    components.append(http)
    prometheus = stack.prometheus()
    if prometheus.configured:  # only with `up --with-prometheus`
        scraper: dict[str, Any] = {
            "name": "prometheus", "url": prometheus.url(), "pid": prometheus.pid,
            "healthy": prometheus.running,
        }  # fmt: skip
        if not prometheus.running:
            scraper["error"] = "not running"
        components.append(scraper)
    return StackStatus(components=components)
