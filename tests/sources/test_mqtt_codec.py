"""The MQTT codec: what we encode, we (and the broker) parse, however it is chunked."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sensorium.sources.mqtt_codec import (
    PUBACK,
    PUBLISH,
    MalformedPacket,
    Packet,
    encode_puback,
    encode_pubacks,
    encode_publish,
    parse_packets,
)

topics = st.text(
    alphabet=st.characters(min_codepoint=33, max_codepoint=0x2FFF, exclude_characters="+#"),
    min_size=1,
    max_size=80,
)
messages = st.lists(
    st.tuples(topics, st.binary(max_size=300), st.sampled_from([0, 1]), st.integers(1, 65535)),
    min_size=1,
    max_size=30,
)


@given(messages=messages, cuts=st.lists(st.integers(1, 97), max_size=40))
def test_publish_round_trip_under_any_chunking(
    messages: list[tuple[str, bytes, int, int]], cuts: list[int]
) -> None:
    wire = b"".join(
        encode_publish(topic, payload, qos=qos, packet_id=pid)
        for topic, payload, qos, pid in messages
    )
    buffer = bytearray()
    parsed: list[Packet] = []
    position = 0
    for size in [*cuts, len(wire)]:
        buffer += wire[position : position + size]
        position += size
        used = parse_packets(buffer, parsed)
        del buffer[:used]
    assert not buffer
    assert [(p.topic, p.payload, p.qos, p.packet_id if p.qos else 1) for p in parsed] == [
        (topic, payload, qos, pid if qos else 1) for topic, payload, qos, pid in messages
    ]
    assert all(p.kind == PUBLISH for p in parsed)


def test_large_payload_uses_multibyte_length() -> None:
    payload = b"x" * 300_000
    buffer = bytearray(encode_publish("devices/a/telemetry", payload, qos=1, packet_id=7))
    out: list[Packet] = []
    assert parse_packets(buffer, out) == len(buffer)
    assert out[0].payload == payload and out[0].packet_id == 7


def test_pubacks_batch_equals_single_pubacks() -> None:
    ids = [1, 2, 65535, 300]
    assert encode_pubacks(ids) == b"".join(encode_puback(i) for i in ids)
    out: list[Packet] = []
    parse_packets(bytearray(encode_pubacks(ids)), out)
    assert [p.kind for p in out] == [PUBACK] * 4
    assert [int.from_bytes(p.body, "big") for p in out] == ids


def test_overlong_remaining_length_is_malformed() -> None:
    with pytest.raises(MalformedPacket):
        parse_packets(bytearray(b"\x30\xff\xff\xff\xff\x01"), [])


def test_incomplete_packet_waits_for_more() -> None:
    wire = encode_publish("t", b"payload", qos=1, packet_id=3)
    out: list[Packet] = []
    assert parse_packets(bytearray(wire[:-1]), out) == 0
    assert out == []
