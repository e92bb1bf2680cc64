"""The domain actors: router, device actors, writer (alerts and notifiers to come)."""

from sensorium.actors._device import DeviceContext, DeviceState, PoisonPill, device_behavior
from sensorium.actors._envelope import Envelope, Telemetry
from sensorium.actors._pipeline import IngestPipeline, PipelineOptions
from sensorium.actors._receipt import Receipt
from sensorium.actors._router import Rejected, Router
from sensorium.actors._writer import Writer, WriteRequest, WriterStatistics

__all__ = [
    "DeviceContext",
    "DeviceState",
    "Envelope",
    "IngestPipeline",
    "PipelineOptions",
    "PoisonPill",
    "Receipt",
    "Rejected",
    "Router",
    "Telemetry",
    "WriteRequest",
    "Writer",
    "WriterStatistics",
    "device_behavior",
]
