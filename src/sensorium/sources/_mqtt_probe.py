"""Is the broker up and does it accept our credentials? One CONNECT, then DISCONNECT."""

from __future__ import annotations

import secrets
import ssl

import trio

from sensorium.sources.mqtt_codec import (
    CONNACK,
    Packet,
    connack_reason,
    encode_connect,
    encode_disconnect,
    parse_packets,
)

__all__ = ["BrokerHealth", "probe_broker"]


class BrokerHealth:
    __slots__ = ("error", "reachable")

    def __init__(self, reachable: bool, error: str = "") -> None:
        self.reachable = reachable
        self.error = error


async def probe_broker(
    host: str,
    port: int,
    *,
    username: str | None,
    password: str | None,
    tls_context: ssl.SSLContext | None = None,
    timeout: float = 2.0,
) -> BrokerHealth:
    """Connect with a throw-away clean session and read the CONNACK."""
    with trio.move_on_after(timeout):
        try:
            stream: trio.abc.Stream = await trio.open_tcp_stream(host, port)
            if tls_context is not None:
                stream = trio.SSLStream(stream, tls_context, server_hostname=host)
            async with stream:
                client_id = "sensorium-probe-" + secrets.token_hex(4)
                await stream.send_all(
                    encode_connect(client_id, username=username, password=password)
                )
                buffer = bytearray()
                packets: list[Packet] = []
                while not packets:
                    chunk = await stream.receive_some(64)
                    if not chunk:
                        return BrokerHealth(False, "the broker closed the connection")
                    buffer += chunk
                    parse_packets(buffer, packets)
                if packets[0].kind != CONNACK or len(packets[0].body) < 2:
                    return BrokerHealth(False, "the broker did not answer CONNACK")
                code = packets[0].body[1]
                if code != 0:
                    return BrokerHealth(False, f"the broker refused us: {connack_reason(code)}")
                await stream.send_all(encode_disconnect())
                return BrokerHealth(True)
        except (OSError, trio.BrokenResourceError, ssl.SSLError) as exc:
            return BrokerHealth(False, f"{type(exc).__name__}: {exc}")
    return BrokerHealth(False, f"no answer within {timeout:.0f} s")
