"""The exceptions Sensorium raises on purpose, and whose fault each one is.

SensoriumError                  base of everything below
├── ConfigError                 the operator's settings are invalid (exit code 2)
├── StackError                  the embedded stack cannot start or stop
│   ├── MissingSystemPackage    a binary (postgres, mosquitto) is not installed
│   └── PortInUse               another process holds one of our ports
├── AlreadyRunning              another engine holds the state folder or the database
└── MigrationError              a migration file failed to apply
"""

from __future__ import annotations

__all__ = [
    "AlreadyRunning",
    "ConfigError",
    "MigrationError",
    "MissingSystemPackage",
    "PortInUse",
    "SensoriumError",
    "StackError",
]


class SensoriumError(Exception):
    """Base class of Sensorium's own errors."""


class ConfigError(SensoriumError):
    """A setting is invalid; the message names the field and where it came from."""


class StackError(SensoriumError):
    """The embedded stack could not be started, checked or stopped."""


class MissingSystemPackage(StackError):
    """A system binary the embedded stack needs is not installed."""

    def __init__(self, binary: str, package: str) -> None:
        super().__init__(
            f"{binary} is not installed; install it with: apt-get install -y {package}"
        )
        self.binary = binary
        self.package = package


class PortInUse(StackError):
    """Another process already listens on a port the stack wants."""

    def __init__(self, port: int, component: str) -> None:
        super().__init__(
            f"port {port} ({component}) is already in use by another process; "
            f"stop it or choose another port in the settings"
        )
        self.port = port
        self.component = component


class AlreadyRunning(SensoriumError):
    """Another engine already owns this state folder or writes to this database."""


class MigrationError(SensoriumError):
    """A numbered migration could not be applied."""
