"""`sensorium bench alerts`: how long from a device publishing a reading that crosses a
threshold to the email arriving at an SMTP server, while the engine ingests at half
its maximum rate.

On a fresh stack whose engine sends email to an SMTP server in this process (aiosmtpd,
plain SMTP on loopback):

1. Maximum ingest: a fleet publishes as fast as it can over MQTT (QoS 1, PUBACK after
   commit), timed from the first publish to the last commit. Then a fleet whose tenant
   has ``rules`` tenant-wide threshold rules that never fire (what evaluating rules on
   every reading costs the hot path), then a third fleet without rules again: the
   ratio is to the mean of the two runs around it (a drifting machine shows as a
   difference between them).
2. Alert latency: a third fleet publishes at half the maximum message rate; meanwhile
   ``probes`` probe devices, each with its own rule (temperature > 50, clearing below
   40) and its own recipient, publish one crossing reading and, later, one clearing
   reading, spread evenly over the phase. Every alert email is matched to the publish
   that caused it by (device, reading time): publish -> SMTP receipt.
3. Baseline, same run: the same kind of email sent straight to the same server with
   smtplib from this process, one at a time (what delivering alone costs).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import smtplib
import socket
import time
from dataclasses import asdict, dataclass, field
from email import message_from_bytes
from email.message import EmailMessage
from typing import Any

import trio
from aiosmtpd.controller import Controller

from sensorium.bench._ingest import IngestBenchOptions, IngestSession, engine_run, machine_facts
from sensorium.bench._loadgen import DeviceCredentials, run_mqtt_load
from sensorium.bench._provision import provision_devices, wait_for_broker_login
from sensorium.sources.mqtt_codec import (
    CONNACK,
    Packet,
    encode_connect,
    encode_disconnect,
    encode_publish,
    parse_packets,
)
from sensorium.storage import connect, create_alert_rule, ensure_tenant

__all__ = ["AlertBenchOptions", "run_alerts_bench"]


@dataclass(frozen=True, slots=True)
class AlertBenchOptions:
    devices: int = 2000  # in each ingest fleet
    messages: int = 30  # per device, in the maximum-rate runs
    metrics: int = 3
    probes: int = 100  # probe devices: two alert emails each (opened, resolved)
    probe_seconds: float = 40.0  # how long the half-rate phase lasts
    rules: int = 20  # tenant-wide rules on the ruled fleet
    baseline_emails: int = 50


@dataclass
class _Inbox:
    """Arrival time of each alert email, by (device id, reading time in ms)."""

    arrivals: dict[tuple[str, int], float] = field(default_factory=dict)
    others: int = 0

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        arrived = time.time()
        message = message_from_bytes(envelope.content)
        payload = message.get_payload(decode=True)
        body = payload.decode() if isinstance(payload, bytes) else ""
        fields = dict(line.split(": ", 1) for line in body.splitlines() if line.count(": ") == 1)
        if "Device" in fields and "At" in fields:
            at_ms = round(dt.datetime.fromisoformat(fields["At"]).timestamp() * 1000)
            self.arrivals[(fields["Device"], at_ms)] = arrived
        else:
            self.others += 1
        return "250 Message accepted"


def _percentiles_ms(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    if not ordered:
        return {"p50_ms": 0.0, "p99_ms": 0.0, "max_ms": 0.0, "samples": 0}

    def at(q: float) -> float:
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000

    return {"p50_ms": at(0.5), "p99_ms": at(0.99), "max_ms": ordered[-1] * 1000,
            "samples": len(ordered)}  # fmt: skip


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class _Probe:
    """One probe device on its own MQTT connection: publishes a reading on demand
    (QoS 1) and notes when."""

    def __init__(self, device: DeviceCredentials, stream: trio.SocketStream) -> None:
        self.device = device
        self.stream = stream
        self.published: dict[int, float] = {}  # reading time (ms) -> publish time

    @classmethod
    async def connect(cls, device: DeviceCredentials, port: int) -> _Probe:
        stream = await trio.open_tcp_stream("127.0.0.1", port)
        await stream.send_all(
            encode_connect(f"probe-{device.id}", username=device.id, password=device.token)
        )
        buffer, packets = bytearray(), list[Packet]()
        with trio.fail_after(10):
            while not packets:
                buffer += await stream.receive_some(4096)
                parse_packets(buffer, packets)
        if packets[0].kind != CONNACK or packets[0].body[1] != 0:
            raise ConnectionError(f"probe {device.id}: the broker refused the login")
        return cls(device, stream)

    async def publish(self, seq: int, temperature: float) -> None:
        now = time.time()
        ts_ms = int(now * 1000)
        payload = json.dumps({"ts": ts_ms, "seq": seq, "metrics": {"temperature": temperature}})
        frame = encode_publish(
            f"devices/{self.device.id}/telemetry", payload.encode(), qos=1, packet_id=seq + 1
        )
        self.published[ts_ms] = now
        await self.stream.send_all(frame)

    async def drain(self) -> None:
        """Read (and drop) the broker's PUBACKs until the connection closes."""
        while await self.stream.receive_some(4096):
            pass

    async def close(self) -> None:
        with trio.move_on_after(2):
            await self.stream.send_all(encode_disconnect())
        await self.stream.aclose()


async def _fleet(stack_url: str, count: int, tenant: str, port: int) -> list[DeviceCredentials]:
    fleet = await provision_devices(stack_url, count, tenant=tenant, prefix=tenant)
    await wait_for_broker_login(fleet[-1], host="127.0.0.1", port=port)
    return fleet


async def _rules(url: str, tenant: str, rules: list[dict[str, Any]]) -> None:
    conn = await connect(url)
    try:
        tenant_id = await ensure_tenant(conn, tenant)
        for rule in rules:
            await create_alert_rule(conn, tenant_id=tenant_id, rule=rule)
    finally:
        await conn.close()


def _direct_smtp(port: int, count: int) -> list[float]:
    """Seconds per email sent straight to the server (new connection each, as the
    engine's SMTP sender does)."""
    seconds = []
    for n in range(count):
        message = EmailMessage()
        message["From"], message["To"] = "bench@sensorium.local", f"direct-{n}@bench.local"
        message["Subject"] = "[critical] probe hot: ALERT on direct"
        message.set_content("probe hot (critical) is open.\n\nDevice: direct\nValue: 60\n")
        started = time.perf_counter()
        with smtplib.SMTP("127.0.0.1", port, timeout=10) as smtp:
            smtp.send_message(message)
        seconds.append(time.perf_counter() - started)
    return seconds


async def run_alerts_bench(options: AlertBenchOptions, *, say: Any) -> dict[str, Any]:
    inbox = _Inbox()
    smtp_port = _free_port()
    loop = asyncio.SelectorEventLoop()  # its own, in its own thread
    controller = Controller(inbox, hostname="127.0.0.1", port=smtp_port, loop=loop)
    controller.start()
    session = IngestSession.start(
        {
            "SENSORIUM_SMTP__HOST": "127.0.0.1",
            "SENSORIUM_SMTP__PORT": str(smtp_port),
            "SENSORIUM_SMTP__STARTTLS": "false",
            "SENSORIUM_SMTP__FROM": "alerts@sensorium.local",
        },
        say=say,
    )
    stack = session.stack
    mqtt_port = stack.ports["mqtt"]
    ingest = IngestBenchOptions(
        devices=options.devices, messages=options.messages, metrics=options.metrics
    )
    try:
        url = stack.primary_url
        say(f"provisioning 4 x {options.devices} devices and {options.probes} probes")
        plain = await _fleet(url, options.devices, "bench-max", mqtt_port)
        ruled = await _fleet(url, options.devices, "bench-ruled", mqtt_port)
        plain_again = await _fleet(url, options.devices, "bench-max-again", mqtt_port)
        steady = await _fleet(url, options.devices, "bench-steady", mqtt_port)
        probes = await _fleet(url, options.probes, "bench-probe", mqtt_port)
        never = [
            {"name": f"never {n}", "scope": {"tenant": True}, "metric": "temperature",
             "condition": {"op": ">", "threshold": 1e9 + n}, "severity": "info",
             "channels": [{"type": "email", "to": "never@bench.local"}]}
            for n in range(options.rules)
        ]  # fmt: skip
        await _rules(url, "bench-ruled", never)
        await _rules(
            url,
            "bench-probe",
            [
                {"name": "probe hot", "scope": {"device_id": probe.id}, "metric": "temperature",
                 "condition": {"op": ">", "threshold": 50, "clear": 40}, "severity": "critical",
                 "channels": [{"type": "email", "to": f"{probe.id}@bench.local"}]}
                for probe in probes
            ],
        )  # fmt: skip
        await trio.sleep(3)  # the engine's rule book reloads within a second or two
        start_ts_ms = int(time.time() * 1000) - options.messages * 1000
        say("maximum ingest, no rules")
        maximum = await engine_run(stack, plain, ingest, start_ts_ms, session.pids)
        say(f"maximum ingest, {options.rules} tenant-wide rules on every reading")
        with_rules = await engine_run(stack, ruled, ingest, start_ts_ms, session.pids)
        say("maximum ingest, no rules, again")
        again = await engine_run(stack, plain_again, ingest, start_ts_ms, session.pids)
        without_rules = (maximum["readings_per_s"] + again["readings_per_s"]) / 2
        half_rate = (maximum["messages_per_s"] + again["messages_per_s"]) / 4
        steady_messages = max(1, int(half_rate * options.probe_seconds / options.devices))
        say(
            f"alert latency: {options.probes * 2} alert emails while {options.devices} devices "
            f"publish {half_rate:,.0f} messages/s"
        )
        connected = [await _Probe.connect(device, mqtt_port) for device in probes]
        load_done = trio.Event()

        async def steady_load() -> None:
            await run_mqtt_load(
                steady, port=mqtt_port, messages=steady_messages, metrics=options.metrics,
                rate=half_rate,
                start_ts_ms=int(time.time() * 1000) - steady_messages * 1000,
            )  # fmt: skip
            load_done.set()

        async def crossings() -> None:
            # Openings over the first half of the phase, resolutions over the second.
            gap = options.probe_seconds / (2 * len(connected))
            await trio.sleep(1)  # the load is under way
            for seq, temperature in ((0, 60.0), (1, 30.0)):
                for probe in connected:
                    await probe.publish(seq, temperature)
                    await trio.sleep(gap)

        async with trio.open_nursery() as nursery:
            for probe in connected:
                nursery.start_soon(probe.drain)
            nursery.start_soon(steady_load)
            await crossings()
            expected = 2 * len(connected)
            with trio.move_on_after(60):
                # The SMTP server runs in its own thread: poll what it has received.
                while len(inbox.arrivals) < expected:  # noqa: ASYNC110
                    await trio.sleep(0.1)
            with trio.move_on_after(600):
                await load_done.wait()
            nursery.cancel_scope.cancel()  # the drains
        for probe in connected:
            await probe.close()
        latencies = [
            inbox.arrivals[(probe.device.id, ts_ms)] - published
            for probe in connected
            for ts_ms, published in probe.published.items()
            if (probe.device.id, ts_ms) in inbox.arrivals
        ]
        say("baseline: the same emails straight to the SMTP server")
        direct = await trio.to_thread.run_sync(_direct_smtp, smtp_port, options.baseline_emails)
    finally:
        stack.down()
        controller.stop()
        loop.close()
    alert = _percentiles_ms(latencies)
    baseline = _percentiles_ms(direct)
    # Every email arrived, and the slowest 1% within a second.
    met = alert["p99_ms"] < 1000.0 and alert["samples"] == 2 * options.probes
    return {
        "suite": "alerts",
        "machine": machine_facts(),
        "options": asdict(options),
        "ingest_max": _ingest_summary(maximum),
        "ingest_with_rules": _ingest_summary(with_rules),
        "ingest_max_again": _ingest_summary(again),
        "rules_cost_ratio": (
            with_rules["readings_per_s"] / without_rules if without_rules else 0.0
        ),
        "half_rate_messages_per_s": half_rate,
        "alert_emails_expected": 2 * options.probes,
        "alert_emails_matched": alert["samples"],
        "publish_to_smtp": alert,
        "direct_smtp": baseline,
        "ratio_p99": alert["p99_ms"] / baseline["p99_ms"] if baseline["p99_ms"] else 0.0,
        "goal": {"p99_ms_below": 1000.0, "met": met},
    }


def _ingest_summary(run: dict[str, Any]) -> dict[str, Any]:
    return {
        key: run[key]
        for key in ("readings_committed", "readings_per_s", "messages_per_s", "seconds")
    }
