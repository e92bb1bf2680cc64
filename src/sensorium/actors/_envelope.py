"""What travels from a source to a device actor."""

from __future__ import annotations

from dataclasses import dataclass, field

from sensorium.actors._receipt import Receipt

__all__ = ["Envelope", "Telemetry"]


@dataclass(slots=True)
class Telemetry:
    """One valid message: all its readings share ``ts_us`` (µs since the epoch).

    Not frozen: a frozen dataclass's __init__ costs several times more, and this one is
    made for every message."""

    ts_us: int
    seq: int | None
    metrics: list[tuple[str, float]]


@dataclass(slots=True)
class Envelope:
    """The valid items of one source message for one device, and its receipt."""

    device_key: int
    tenant_id: int
    device_id: str
    source: str  # "mqtt" | "http"
    items: list[Telemetry]
    receipt: Receipt
    raw: bytes = b""
    topic: str | None = None
    handled: bool = field(default=False)  # set once judged: a redelivery skips it
