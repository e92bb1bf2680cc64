"""The edges: MQTT subscriber(s) and the HTTPS ingest path: decode, validate, route."""

from sensorium.sources._mqtt_probe import BrokerHealth, probe_broker
from sensorium.sources._mqtt_source import MqttSource, MqttSourceOptions, MqttSourceStatistics
from sensorium.sources._payload import Decoded, Limits, Rejection, decode_payload

__all__ = [
    "BrokerHealth",
    "Decoded",
    "Limits",
    "MqttSource",
    "MqttSourceOptions",
    "MqttSourceStatistics",
    "Rejection",
    "decode_payload",
    "probe_broker",
]
