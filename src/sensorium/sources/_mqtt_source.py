"""The MQTT source: a trio-native subscriber that parses PUBLISH frames in bulk and
acknowledges each message (PUBACK) only after what it carried is committed.

Measured on this machine (DEPENDENCIES.md), paho's loop costs ~61-86 us per QoS 1
message and every library that hands messages to trio one by one delivered 0.3k-3.3k
messages/s; reading 256 KiB chunks and parsing them together costs 5-7 us. So this
is our own client, speaking just the MQTT 3.1.1 the engine needs.

- Persistent session (clean session off, fixed client id): while the engine is down
  the broker keeps its messages, and after a crash it redelivers every message that
  was not acknowledged; the device actors recognise the ones already stored.
- PUBACKs of a whole batch go out in one write. Acknowledgements of a connection that
  has since dropped are discarded: packet ids belong to a connection.
- Backpressure: at most ``max_inflight`` messages between read and commit; past that
  the reader stops reading and TCP holds the rest in the broker's queue.
- Stop: stop reading, wait (under a deadline) for what was read to commit, send the
  PUBACKs, a PINGREQ/PINGRESP round trip (closing right after a burst of PUBACKs lost
  thousands of them here), then DISCONNECT.
"""

from __future__ import annotations

import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import trio

from sensorium.actors import Envelope, Receipt, Rejected, Router
from sensorium.logs import get_logger
from sensorium.sources._payload import Limits, decode_payload
from sensorium.sources.mqtt_codec import (
    CONNACK,
    PINGRESP,
    PUBLISH,
    SUBACK,
    MalformedPacket,
    Packet,
    connack_reason,
    encode_connect,
    encode_disconnect,
    encode_pingreq,
    encode_pubacks,
    encode_subscribe,
    parse_packets,
)
from sensorium.storage import DeviceDirectory, DeviceEntry

__all__ = ["MqttSource", "MqttSourceOptions", "MqttSourceStatistics"]

log = get_logger(__name__)

_READ_BYTES = 256 * 1024
_TOPIC_PREFIX = "devices/"
_TOPIC_SUFFIX = "/telemetry"


class BrokerRefused(Exception):
    """The broker answered CONNACK with an error (bad credentials, ...)."""


@dataclass(frozen=True, slots=True)
class MqttSourceOptions:
    host: str
    port: int
    username: str | None
    password: str | None
    client_id: str = "sensorium-engine"
    topic: str = "devices/+/telemetry"
    tls: ssl.SSLContext | None = None
    keepalive_s: int = 30
    connect_timeout_s: float = 5.0
    max_inflight: int = 50_000
    drain_timeout_s: float = 15.0


@dataclass(frozen=True, slots=True)
class MqttSourceStatistics:
    connected: bool
    connections: int
    received: int
    acknowledged: int
    inflight: int
    max_inflight: int
    reads_paused: int


@dataclass(slots=True)
class _Counters:
    connections: int = 0
    received: int = 0
    acknowledged: int = 0
    reads_paused: int = 0


@dataclass(slots=True)
class _Connection:
    stream: trio.abc.Stream
    generation: int
    send_lock: trio.StrictFIFOLock = field(default_factory=trio.StrictFIFOLock)
    acks: list[int] = field(default_factory=list)
    ack_ready: trio.Event = field(default_factory=trio.Event)
    pong: trio.Event = field(default_factory=trio.Event)
    subscribed: trio.Event = field(default_factory=trio.Event)
    # Read but not yet parsed / parsed but not yet dispatched (what came with CONNACK).
    buffer: bytearray = field(default_factory=bytearray)
    packets: list[Packet] = field(default_factory=list)

    async def send(self, data: bytes) -> None:
        async with self.send_lock:
            await self.stream.send_all(data)


class _PubackReceipt(Receipt):
    """A receipt that remembers which PUBACK it owes (one object per message, no
    closure)."""

    __slots__ = ("generation", "packet_id")

    def __init__(self, done: Callable[[Receipt], None], generation: int, packet_id: int) -> None:
        super().__init__(done)
        self.generation = generation
        self.packet_id = packet_id


class MqttSource:
    def __init__(
        self,
        options: MqttSourceOptions,
        *,
        router: Router,
        directory: DeviceDirectory,
        limits: Limits,
    ) -> None:
        self._options = options
        self._router = router
        self._directory = directory
        self._limits = limits
        self._generation = 0
        self._connection: _Connection | None = None
        self._inflight = 0
        self._room = trio.Event()
        self._room.set()
        self._drained = trio.Event()
        self._drained.set()
        self._counters = _Counters()

    # -- lifecycle -----------------------------------------------------------------------

    async def run(
        self, *, stop: trio.Event, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Stay subscribed until ``stop`` is set, reconnecting with backoff; then drain."""
        started = False
        attempt = 0
        while not stop.is_set():
            try:
                async with trio.open_nursery() as nursery:
                    connection = await self._connect()
                    attempt = 0
                    if not started:
                        task_status.started()
                        started = True
                    nursery.start_soon(self._stop_when, stop, nursery.cancel_scope)
                    nursery.start_soon(self._read, connection)
                    nursery.start_soon(self._send_acks, connection)
                    nursery.start_soon(self._keepalive, connection)
                    await trio.sleep_forever()
            except* (
                OSError,
                trio.BrokenResourceError,
                trio.ClosedResourceError,
                MalformedPacket,
                BrokerRefused,
                trio.TooSlowError,
                ConnectionError,
            ) as group:
                if self._connection is not None:
                    with trio.CancelScope(shield=True), trio.move_on_after(1):
                        await self._connection.stream.aclose()
                self._connection = None
                attempt += 1
                delay = min(0.1 * 2**attempt, 5.0)
                log.warning(
                    "mqtt connection lost; reconnecting",
                    delay_s=delay,
                    error=repr(group.exceptions[0]),
                )
                with trio.move_on_after(delay):
                    await stop.wait()
        if self._connection is not None:
            await self._drain(self._connection)
        if not started:
            task_status.started()

    async def _stop_when(self, stop: trio.Event, scope: trio.CancelScope) -> None:
        await stop.wait()
        scope.cancel()

    async def _connect(self) -> _Connection:
        options = self._options
        with trio.fail_after(options.connect_timeout_s):
            stream: trio.abc.Stream = await trio.open_tcp_stream(options.host, options.port)
            if options.tls is not None:
                stream = trio.SSLStream(stream, options.tls, server_hostname=options.host)
            self._generation += 1
            connection = _Connection(stream, self._generation)
            await connection.send(
                encode_connect(
                    options.client_id,
                    username=options.username,
                    password=options.password,
                    clean_session=False,
                    keepalive=options.keepalive_s,
                )
            )
            buffer, packets = connection.buffer, connection.packets
            while not packets:
                chunk = await stream.receive_some(4096)
                if not chunk:
                    raise ConnectionError("the broker closed the connection during CONNECT")
                buffer += chunk
                used = parse_packets(buffer, packets)
                del buffer[:used]
            connack = packets.pop(0)
            if connack.kind != CONNACK or connack.body[1] != 0:
                code = connack.body[1] if len(connack.body) > 1 else -1
                raise BrokerRefused(f"broker refused the engine: {connack_reason(code)}")
            await connection.send(encode_subscribe(1, options.topic, qos=1))
        self._connection = connection
        self._counters.connections += 1
        log.info(
            "mqtt connected",
            host=options.host,
            port=options.port,
            session_present=bool(connack.body[0] & 1),
            generation=connection.generation,
        )
        return connection

    # -- reading -------------------------------------------------------------------------

    async def _read(self, connection: _Connection) -> None:
        stream = connection.stream
        buffer, packets = connection.buffer, connection.packets
        while True:
            if packets:
                await self._dispatch(connection, packets)
                packets.clear()
            chunk = await stream.receive_some(_READ_BYTES)
            if not chunk:
                raise ConnectionError("the broker closed the connection")
            buffer += chunk
            used = parse_packets(buffer, packets)
            del buffer[:used]

    async def _dispatch(self, connection: _Connection, packets: list[Packet]) -> None:
        for packet in packets:
            if packet.kind == PUBLISH:
                # The bound holds message by message: one read can carry hundreds.
                if self._inflight >= self._options.max_inflight:
                    self._counters.reads_paused += 1
                    await self._room.wait()
                await self._on_publish(connection, packet)
            elif packet.kind == PINGRESP:
                connection.pong.set()
            elif packet.kind == SUBACK:
                if packet.body[-1] == 0x80:
                    raise BrokerRefused(f"subscription to {self._options.topic} refused")
                connection.subscribed.set()

    async def _on_publish(self, connection: _Connection, packet: Packet) -> None:
        self._counters.received += 1
        topic = packet.topic
        receipt = self._receipt(connection.generation, packet.packet_id if packet.qos else 0)
        raw = packet.payload
        router = self._router
        if not (topic.startswith(_TOPIC_PREFIX) and topic.endswith(_TOPIC_SUFFIX)):
            await router.reject(
                source="mqtt",
                tenant_id=None,
                device_id=None,
                topic=topic,
                rejections=[Rejected(None, "bad-topic", "topic must be devices/<id>/telemetry")],
                raw=raw,
                receipt=receipt,
            )
            return
        device_id = topic[len(_TOPIC_PREFIX) : -len(_TOPIC_SUFFIX)]
        entry = self._directory.get_nowait(device_id) or await self._lookup(device_id)
        if entry is None:
            await router.reject(
                source="mqtt",
                tenant_id=None,
                device_id=device_id[:64],
                topic=topic,
                rejections=[Rejected(None, "unknown-device", "no such device")],
                raw=raw,
                receipt=receipt,
            )
            return
        decoded = decode_payload(raw, now_us=time.time_ns() // 1000, limits=self._limits)
        rejections = [Rejected(r.index, r.reason, r.detail) for r in decoded.rejected]
        if decoded.items and rejections:
            receipt.add_part()
        items = decoded.items
        await router.route(
            Envelope(entry.key, entry.tenant_id, device_id, "mqtt", items, receipt, raw, topic),
            rejections=rejections,
        )

    async def _lookup(self, device_id: str) -> DeviceEntry | None:
        """A device the directory has not seen yet. While the database cannot answer,
        the reader waits (backpressure) instead of failing the message."""
        attempt = 0
        while True:
            try:
                return await self._directory.get(device_id)
            except Exception as exc:
                attempt += 1
                log.warning("device lookup failed; retrying", error=str(exc))
                await trio.sleep(min(0.05 * 2**attempt, 5.0))

    def _receipt(self, generation: int, packet_id: int) -> Receipt:
        self._inflight += 1
        if self._inflight >= self._options.max_inflight and self._room.is_set():
            self._room = trio.Event()
        if self._drained.is_set():
            self._drained = trio.Event()
        return _PubackReceipt(self._settled, generation, packet_id)

    def _settled(self, receipt: Receipt) -> None:
        """A message is durable: count it out, and queue its PUBACK if its connection
        is still the current one (packet ids belong to a connection)."""
        assert isinstance(receipt, _PubackReceipt)
        self._inflight -= 1
        if self._inflight < self._options.max_inflight:
            self._room.set()
        if self._inflight == 0:
            self._drained.set()
        connection = self._connection
        if (
            receipt.packet_id
            and connection is not None
            and connection.generation == receipt.generation
        ):
            connection.acks.append(receipt.packet_id)
            connection.ack_ready.set()

    # -- writing -------------------------------------------------------------------------

    async def _send_acks(self, connection: _Connection) -> None:
        while True:
            await connection.ack_ready.wait()
            await self._flush_acks(connection)

    async def _flush_acks(self, connection: _Connection) -> None:
        connection.ack_ready = trio.Event()
        acks, connection.acks = connection.acks, []
        if acks:
            await connection.send(encode_pubacks(acks))
            self._counters.acknowledged += len(acks)

    async def _keepalive(self, connection: _Connection) -> None:
        interval = self._options.keepalive_s / 2
        while True:
            await trio.sleep(interval)
            connection.pong = trio.Event()
            await connection.send(encode_pingreq())
            with trio.fail_after(self._options.keepalive_s):
                await connection.pong.wait()

    async def _drain(self, connection: _Connection) -> None:
        """Graceful stop: settle what was read, acknowledge it, then disconnect."""
        with trio.move_on_after(self._options.drain_timeout_s) as scope:
            await self._drained.wait()
            await self._flush_acks(connection)
            # Round trip before DISCONNECT, so the broker has read our PUBACKs.
            connection.pong = trio.Event()
            await connection.send(encode_pingreq())
            buffer = bytearray()
            packets: list[Packet] = []
            while not any(p.kind == PINGRESP for p in packets):
                chunk = await connection.stream.receive_some(_READ_BYTES)
                if not chunk:
                    break
                buffer += chunk
                used = parse_packets(buffer, packets)
                del buffer[:used]
            await connection.send(encode_disconnect())
        if scope.cancelled_caught:
            log.warning(
                "mqtt drain timed out; unacknowledged messages will be redelivered",
                inflight=self._inflight,
            )
        with trio.CancelScope(shield=True), trio.move_on_after(2):
            await connection.stream.aclose()
        self._connection = None

    def statistics(self) -> MqttSourceStatistics:
        c = self._counters
        return MqttSourceStatistics(
            connected=self._connection is not None,
            connections=c.connections,
            received=c.received,
            acknowledged=c.acknowledged,
            inflight=self._inflight,
            max_inflight=self._options.max_inflight,
            reads_paused=c.reads_paused,
        )
