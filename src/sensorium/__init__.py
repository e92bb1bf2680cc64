"""Sensorium: an actor-based IoT telemetry engine on trio."""

__all__ = ["__version__"]

__version__ = "0.1.0"
