"""MQTT 3.1.1 packets, encoded and parsed in bulk.

Only what the engine and its load generator speak: CONNECT/CONNACK, SUBSCRIBE/SUBACK,
PUBLISH (QoS 0 and 1), PUBACK, PINGREQ/PINGRESP, DISCONNECT. The parser works on a
bytearray holding many packets at once, because reading the socket in large chunks and
parsing them together is what makes a Python MQTT reader fast (DEPENDENCIES.md: 5-7 us
per message in bulk against ~86 us for paho's packet-at-a-time loop).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

__all__ = [
    "CONNACK",
    "PINGRESP",
    "PUBACK",
    "PUBLISH",
    "SUBACK",
    "MalformedPacket",
    "Packet",
    "connack_reason",
    "encode_connect",
    "encode_disconnect",
    "encode_pingreq",
    "encode_puback",
    "encode_pubacks",
    "encode_publish",
    "encode_subscribe",
    "parse_packets",
]

CONNECT, CONNACK, PUBLISH, PUBACK = 1, 2, 3, 4
SUBSCRIBE, SUBACK, PINGREQ, PINGRESP, DISCONNECT = 8, 9, 12, 13, 14

_CONNACK_REASONS = {
    0: "accepted",
    1: "unacceptable protocol version",
    2: "client identifier rejected",
    3: "server unavailable",
    4: "bad user name or password",
    5: "not authorised",
}

_PUBACK_HEAD = b"\x40\x02"


class MalformedPacket(Exception):
    """The peer sent bytes that are not MQTT 3.1.1."""


@dataclass(frozen=True, slots=True)
class Packet:
    """One parsed packet. For PUBLISH: topic, payload, qos, dup and packet_id."""

    kind: int
    flags: int
    body: bytes
    topic: str = ""
    payload: bytes = b""
    packet_id: int = 0

    @property
    def qos(self) -> int:
        return (self.flags >> 1) & 0x03

    @property
    def dup(self) -> bool:
        return bool(self.flags & 0x08)


def connack_reason(code: int) -> str:
    return _CONNACK_REASONS.get(code, f"unknown reason {code}")


def _remaining_length(length: int) -> bytes:
    out = bytearray()
    while True:
        byte, length = length % 128, length // 128
        out.append(byte | (0x80 if length else 0))
        if not length:
            return bytes(out)


def _string(value: str | bytes) -> bytes:
    raw = value.encode() if isinstance(value, str) else value
    return struct.pack("!H", len(raw)) + raw


def _packet(first_byte: int, body: bytes) -> bytes:
    return bytes((first_byte,)) + _remaining_length(len(body)) + body


def encode_connect(
    client_id: str,
    *,
    username: str | None = None,
    password: str | None = None,
    clean_session: bool = True,
    keepalive: int = 60,
) -> bytes:
    flags = 0x02 if clean_session else 0x00
    payload = _string(client_id)
    if username is not None:
        flags |= 0x80
        payload += _string(username)
    if password is not None:
        flags |= 0x40
        payload += _string(password)
    body = _string("MQTT") + bytes((4, flags)) + struct.pack("!H", keepalive) + payload
    return _packet(CONNECT << 4, body)


def encode_subscribe(packet_id: int, topic: str, qos: int = 1) -> bytes:
    return _packet(
        (SUBSCRIBE << 4) | 0x02, struct.pack("!H", packet_id) + _string(topic) + bytes((qos,))
    )


def encode_publish(
    topic: str, payload: bytes, *, qos: int = 0, packet_id: int = 0, dup: bool = False
) -> bytes:
    body = _string(topic)
    if qos:
        body += struct.pack("!H", packet_id)
    return _packet((PUBLISH << 4) | (qos << 1) | (0x08 if dup else 0), body + payload)


def encode_puback(packet_id: int) -> bytes:
    return _PUBACK_HEAD + struct.pack("!H", packet_id)


def encode_pubacks(packet_ids: list[int]) -> bytes:
    """Many PUBACKs in one buffer, to be sent with one write."""
    return b"".join(_PUBACK_HEAD + packet_id.to_bytes(2, "big") for packet_id in packet_ids)


def encode_pingreq() -> bytes:
    return b"\xc0\x00"


def encode_disconnect() -> bytes:
    return b"\xe0\x00"


def parse_packets(buffer: bytearray, out: list[Packet]) -> int:
    """Append every complete packet in ``buffer`` to ``out``; return the bytes consumed.

    The caller deletes the consumed prefix (once per chunk, not once per packet).
    """
    pos = 0
    end = len(buffer)
    view = memoryview(buffer)
    try:
        while pos + 2 <= end:
            first = buffer[pos]
            # Remaining length: 1 to 4 bytes, 7 bits each.
            length = 0
            multiplier = 1
            cursor = pos + 1
            while True:
                if cursor >= end:
                    return pos
                byte = buffer[cursor]
                length += (byte & 0x7F) * multiplier
                cursor += 1
                if not byte & 0x80:
                    break
                multiplier *= 128
                if multiplier > 128**3:
                    raise MalformedPacket("remaining length longer than 4 bytes")
            if cursor + length > end:
                return pos
            kind = first >> 4
            if kind == PUBLISH:
                topic_length = (buffer[cursor] << 8) | buffer[cursor + 1]
                topic_end = cursor + 2 + topic_length
                # The broker validates UTF-8 topics; never let a bad one stop the reader.
                topic = bytes(view[cursor + 2 : topic_end]).decode(errors="replace")
                qos = (first >> 1) & 0x03
                if qos:
                    packet_id = (buffer[topic_end] << 8) | buffer[topic_end + 1]
                    payload_start = topic_end + 2
                else:
                    packet_id = 0
                    payload_start = topic_end
                out.append(
                    Packet(
                        PUBLISH,
                        first & 0x0F,
                        b"",
                        topic,
                        bytes(view[payload_start : cursor + length]),
                        packet_id,
                    )
                )
            else:
                out.append(Packet(kind, first & 0x0F, bytes(view[cursor : cursor + length])))
            pos = cursor + length
        return pos
    finally:
        view.release()
