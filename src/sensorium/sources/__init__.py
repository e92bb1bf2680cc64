"""The edges: MQTT subscriber(s) and the HTTPS ingest path."""

from sensorium.sources._mqtt_probe import BrokerHealth, probe_broker

__all__ = ["BrokerHealth", "probe_broker"]
