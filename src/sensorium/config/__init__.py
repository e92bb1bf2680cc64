"""Settings: environment variables ``SENSORIUM_*`` and an optional TOML file."""

from sensorium.config._settings import (
    AlertSettings,
    ArchiveSettings,
    AuthSettings,
    DatabaseSettings,
    EngineSettings,
    HttpSettings,
    IngestSettings,
    MqttSettings,
    SendgridSettings,
    Settings,
    SmtpSettings,
    StackSettings,
    TwilioSettings,
    load_settings,
)

__all__ = [
    "AlertSettings",
    "ArchiveSettings",
    "AuthSettings",
    "DatabaseSettings",
    "EngineSettings",
    "HttpSettings",
    "IngestSettings",
    "MqttSettings",
    "SendgridSettings",
    "Settings",
    "SmtpSettings",
    "StackSettings",
    "TwilioSettings",
    "load_settings",
]
