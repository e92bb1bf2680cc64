"""The broker-only baseline: the same devices publish the same frames, and a bare
subscriber (our bulk frame parser, PUBACK at once, no engine behind it) reads them.
It measures what the broker and the load generator allow on this machine."""

from __future__ import annotations

import time

import trio

from sensorium.bench._loadgen import DeviceCredentials, LoadResult, run_mqtt_load
from sensorium.sources.mqtt_codec import (
    CONNACK,
    PUBLISH,
    SUBACK,
    Packet,
    encode_connect,
    encode_disconnect,
    encode_pubacks,
    encode_subscribe,
    parse_packets,
)

__all__ = ["run_broker_only"]


async def _bare_subscriber(
    port: int,
    username: str,
    password: str,
    expected: int,
    ready: trio.Event,
    done: list[float],
) -> None:
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    async with stream:
        await stream.send_all(
            encode_connect("bench-bare", username=username, password=password, clean_session=True)
        )
        await stream.send_all(encode_subscribe(1, "devices/+/bench", qos=1))
        buffer = bytearray()
        packets: list[Packet] = []
        received = 0
        subscribed = False
        while received < expected:
            chunk = await stream.receive_some(256 * 1024)
            if not chunk:
                raise ConnectionError("the broker closed the connection")
            buffer += chunk
            used = parse_packets(buffer, packets)
            del buffer[:used]
            acks = []
            for packet in packets:
                if packet.kind == PUBLISH:
                    received += 1
                    if packet.qos:
                        acks.append(packet.packet_id)
                elif packet.kind == CONNACK and packet.body[1] != 0:
                    raise ConnectionError("the broker refused the bare subscriber")
                elif packet.kind == SUBACK and not subscribed:
                    subscribed = True
                    ready.set()
            packets.clear()
            if acks:
                await stream.send_all(encode_pubacks(acks))
        done.append(time.perf_counter())
        await stream.send_all(encode_disconnect())


async def run_broker_only(
    fleet: list[DeviceCredentials],
    *,
    port: int,
    engine_user: str,
    engine_password: str,
    messages: int,
    metrics: int,
) -> dict[str, float]:
    expected = len(fleet) * messages
    ready = trio.Event()
    done: list[float] = []
    result = LoadResult(devices=len(fleet), messages=0, readings=0, value_sum=0.0, seconds=0)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(
            _bare_subscriber, port, engine_user, engine_password, expected, ready, done
        )
        with trio.fail_after(30):
            await ready.wait()
        await run_mqtt_load(
            fleet, port=port, messages=messages, metrics=metrics, result=result, topic_leaf="bench"
        )
        with trio.move_on_after(300):
            while not done:  # noqa: ASYNC110 (the subscriber appends when it has all)
                await trio.sleep(0.05)
        nursery.cancel_scope.cancel()
    seconds = (done[0] if done else time.perf_counter()) - (result.first_send or 0.0)
    return {
        "messages": float(expected),
        "seconds": seconds,
        "messages_per_s": expected / seconds,
        "readings_per_s": expected * metrics / seconds,
    }
