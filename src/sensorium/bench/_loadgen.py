"""A load generator that cannot be the bottleneck unnoticed: simulated devices that
publish pre-encoded MQTT frames (paho would cost ~70 us per publish) or POST to the
HTTP API, with realistic sensor series and sequence numbers.

Each device is a connection of its own, logged in with its own id and token, exactly
as real devices are. Readings are deterministic from (device index, message index), so
a test can compute the expected count and sum of values.
"""

from __future__ import annotations

import json
import math
import ssl
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import partial
from urllib.parse import urlsplit

import trio

from sensorium.sources.mqtt_codec import (
    CONNACK,
    Packet,
    encode_connect,
    encode_disconnect,
    encode_pingreq,
    encode_publish,
    parse_packets,
)

__all__ = [
    "DeviceCredentials",
    "LoadResult",
    "expected_sum",
    "message_payload",
    "run_http_load",
    "run_mqtt_load",
]

CONNECTIONS_PER_ADDRESS = 20_000
METRICS = ("temperature", "humidity", "pressure", "battery", "power", "energy")


@dataclass(frozen=True, slots=True)
class DeviceCredentials:
    id: str
    token: str


@dataclass(slots=True)
class LoadResult:
    devices: int
    messages: int
    readings: int
    value_sum: float
    seconds: float
    failures: int = 0
    http_status: dict[int, int] = field(default_factory=dict)
    sent: int = 0  # messages written to sockets so far (a bench samples it while running)
    source_addresses: int = 1  # loopback addresses the connections came from
    first_send: float | None = None  # time.perf_counter() of the first message written


def reading_value(device: int, message: int, metric: int) -> float:
    """A realistic, deterministic series: a daily-ish sine per device plus a ramp."""
    base = (20.0, 45.0, 1013.0, 3.7, 120.0, 1000.0)[metric % 6]
    return round(base + 5 * math.sin((message + device) / 10) + 0.01 * message, 3)


def message_payload(device: int, message: int, *, metrics: int, ts_ms: int) -> bytes:
    values = {
        METRICS[m % 6] + ("" if m < 6 else f"_{m}"): reading_value(device, message, m)
        for m in range(metrics)
    }
    return json.dumps(
        {"ts": ts_ms, "seq": message, "metrics": values}, separators=(",", ":")
    ).encode()


def expected_sum(devices: int, messages: int, metrics: int) -> float:
    return sum(
        reading_value(d, i, m)
        for d in range(devices)
        for i in range(messages)
        for m in range(metrics)
    )


async def _mqtt_device(
    index: int,
    credentials: DeviceCredentials,
    *,
    port: int,
    host: str,
    frames: Sequence[bytes],
    interval_s: float,
    start_at: float,
    result: LoadResult,
    ready: trio.Semaphore,
    local_address: str | None,
) -> None:
    async with ready:
        stream = await trio.open_tcp_stream(host, port, local_address=local_address)
        await stream.send_all(
            encode_connect(
                f"sim-{credentials.id}", username=credentials.id, password=credentials.token
            )
        )
        buffer = bytearray()
        packets: list[Packet] = []
        while not packets:
            chunk = await stream.receive_some(4096)
            if not chunk:
                raise ConnectionError("broker closed the connection")
            buffer += chunk
            parse_packets(buffer, packets)
        if packets[0].kind != CONNACK or packets[0].body[1] != 0:
            result.failures += 1
            await stream.aclose()
            return
    async with stream:
        await trio.sleep_until(start_at + (index % 997) / 997 * interval_s)
        if result.first_send is None:
            result.first_send = time.perf_counter()
        acked = 0

        async def drain() -> None:
            nonlocal acked
            buf = bytearray()
            out: list[Packet] = []
            while acked < len(frames) + 1:  # every PUBACK, then our PINGRESP
                chunk = await stream.receive_some(65536)
                if not chunk:
                    return
                buf += chunk
                used = parse_packets(buf, out)
                del buf[:used]
                acked += len(out)
                out.clear()

        async with trio.open_nursery() as nursery:
            nursery.start_soon(drain)
            if interval_s:
                for frame in frames:
                    await stream.send_all(frame)
                    result.sent += 1
                    await trio.sleep(interval_s)
            else:
                # As fast as the broker takes them: one write of every frame.
                await stream.send_all(b"".join(frames))
                result.sent += len(frames)
            await stream.send_all(encode_pingreq())
        await stream.send_all(encode_disconnect())


async def run_mqtt_load(
    devices: Sequence[DeviceCredentials],
    *,
    port: int,
    host: str = "127.0.0.1",
    messages: int,
    metrics: int = 3,
    rate: float | None = None,
    start_ts_ms: int | None = None,
    connect_concurrency: int = 200,
    result: LoadResult | None = None,
    topic_leaf: str = "telemetry",
) -> LoadResult:
    """Every device publishes ``messages`` QoS 1 messages; ``rate`` is messages/s for
    the whole fleet (None: as fast as the broker takes them). Returns once the broker
    acknowledged every message (the broker's PUBACK, not the engine's commit)."""
    now_ms = start_ts_ms if start_ts_ms is not None else int(time.time() * 1000) - messages * 1000
    interval = len(devices) / rate if rate else 0.0
    if result is None:
        result = LoadResult(devices=len(devices), messages=0, readings=0, value_sum=0.0, seconds=0)
    all_frames = []
    for d in range(len(devices)):
        frames = []
        topic = f"devices/{devices[d].id}/{topic_leaf}"
        for i in range(messages):
            payload = message_payload(d, i, metrics=metrics, ts_ms=now_ms + i * 1000)
            frames.append(encode_publish(topic, payload, qos=1, packet_id=i % 65535 + 1))
        all_frames.append(frames)
    result.messages = len(devices) * messages
    result.readings = result.messages * metrics
    result.value_sum = expected_sum(len(devices), messages, metrics)
    ready = trio.Semaphore(connect_concurrency)
    # One source address has ~28,000 ephemeral ports toward one server port: past
    # that, connections come from further loopback addresses (127.0.0.2, ...).
    spread = host.startswith("127.") and len(devices) > CONNECTIONS_PER_ADDRESS
    result.source_addresses = (len(devices) - 1) // CONNECTIONS_PER_ADDRESS + 1 if spread else 1
    started = time.monotonic()
    start_at = trio.current_time() + 0.5
    async with trio.open_nursery() as nursery:
        for d, credentials in enumerate(devices):
            nursery.start_soon(
                partial(
                    _mqtt_device,
                    d,
                    credentials,
                    port=port,
                    host=host,
                    frames=all_frames[d],
                    interval_s=interval,
                    start_at=start_at,
                    result=result,
                    ready=ready,
                    local_address=(
                        f"127.0.0.{2 + d // CONNECTIONS_PER_ADDRESS}" if spread else None
                    ),
                )
            )
    result.seconds = time.monotonic() - started
    return result


class _HttpConnection:
    """One keep-alive HTTP/1.1 connection speaking just enough to POST and read the
    answer (httpx costs about a millisecond of CPU per request, which made the load
    generator the bottleneck of the HTTP bench)."""

    def __init__(self, stream: trio.abc.Stream) -> None:
        self.stream = stream
        self.buffer = bytearray()

    async def _fill(self) -> None:
        chunk = await self.stream.receive_some(65536)
        if not chunk:
            raise ConnectionError("the server closed the connection")
        self.buffer += chunk

    async def request(self, request: bytes) -> tuple[int, dict[str, str], bytes]:
        await self.stream.send_all(request)
        while (end := self.buffer.find(b"\r\n\r\n")) < 0:
            await self._fill()
        head = bytes(self.buffer[:end]).decode("latin-1").split("\r\n")
        del self.buffer[: end + 4]
        status = int(head[0].split(" ", 2)[1])
        headers = {}
        for line in head[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        length = int(headers.get("content-length", "0"))
        while len(self.buffer) < length:
            await self._fill()
        body = bytes(self.buffer[:length])
        del self.buffer[:length]
        return status, headers, body


async def _open_http(base_url: str, verify: ssl.SSLContext | bool) -> _HttpConnection:
    parts = urlsplit(base_url)
    host = parts.hostname or "127.0.0.1"
    stream: trio.abc.Stream = await trio.open_tcp_stream(
        host, parts.port or (443 if parts.scheme == "https" else 80)
    )
    if parts.scheme == "https":
        context = verify if isinstance(verify, ssl.SSLContext) else ssl.create_default_context()
        stream = trio.SSLStream(stream, context, server_hostname=host)
    return _HttpConnection(stream)


async def run_http_load(
    devices: Sequence[DeviceCredentials],
    *,
    base_url: str,
    messages: int,
    metrics: int = 3,
    batch: int = 1,
    concurrency: int = 64,
    verify: ssl.SSLContext | bool = True,
    start_ts_ms: int | None = None,
    result: LoadResult | None = None,
) -> LoadResult:
    """Every device POSTs its messages to /api/v1/telemetry, ``batch`` per request, over
    ``concurrency`` keep-alive connections; requests are encoded before the clock
    starts. A 429 or 503 is retried after its Retry-After, as a well-behaved device
    would."""
    now_ms = start_ts_ms if start_ts_ms is not None else int(time.time() * 1000) - messages * 1000
    if result is None:
        result = LoadResult(devices=0, messages=0, readings=0, value_sum=0.0, seconds=0)
    result.devices = len(devices)
    result.messages = len(devices) * messages
    result.readings = len(devices) * messages * metrics
    result.value_sum = expected_sum(len(devices), messages, metrics)
    host = urlsplit(base_url).netloc
    requests: list[tuple[bytes, int]] = []
    for first in range(0, messages, batch):
        for d, device in enumerate(devices):
            count = min(batch, messages - first)
            body = (
                b"["
                + b",".join(
                    message_payload(d, i, metrics=metrics, ts_ms=now_ms + i * 1000)
                    for i in range(first, first + count)
                )
                + b"]"
            )
            head = (
                f"POST /api/v1/telemetry HTTP/1.1\r\nHost: {host}\r\n"
                f"Authorization: Bearer {device.token}\r\n"
                f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
            )
            requests.append((head.encode() + body, count))
    send, receive = trio.open_memory_channel[tuple[bytes, int]](concurrency * 2)
    started = time.monotonic()

    async def worker(jobs: trio.MemoryReceiveChannel[tuple[bytes, int]]) -> None:
        connection = await _open_http(base_url, verify)
        async with connection.stream, jobs:
            async for request, count in jobs:
                if result.first_send is None:
                    result.first_send = time.perf_counter()
                for _attempt in range(100):
                    status, headers, _ = await connection.request(request)
                    result.http_status[status] = result.http_status.get(status, 0) + 1
                    if status in (429, 503):
                        await trio.sleep(float(headers.get("retry-after", "1")))
                        continue
                    if status == 200:
                        result.sent += count
                    else:
                        result.failures += 1
                    break

    async with trio.open_nursery() as nursery:
        for _ in range(concurrency):
            nursery.start_soon(worker, receive.clone())
        receive.close()
        async with send:
            for job in requests:
                await send.send(job)
    result.seconds = time.monotonic() - started
    return result
