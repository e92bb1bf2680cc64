"""The settings models.

Every field can be set from the environment as ``SENSORIUM_<NAME>`` (nested fields with
``__``: ``SENSORIUM_DATABASE__PRIMARY_URL``) or from a TOML file given by ``--config`` or
``SENSORIUM_CONFIG``. The environment wins over the file; explicit arguments win over both.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from sensorium.errors import ConfigError

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

ENV_PREFIX = "SENSORIUM_"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _check_postgres_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("postgres", "postgresql") or not parts.hostname:
        raise ValueError("must be a postgresql://user:password@host:port/dbname URL")
    return url


class DatabaseSettings(_Section):
    """PostgreSQL: one primary for writes, replicas for analytics."""

    primary_url: str | None = Field(
        default=None, description="postgresql:// URL of the primary (sensorium run)."
    )
    replica_urls: list[str] = Field(
        default_factory=list, description="postgresql:// URLs of the read replicas."
    )
    pool_min_size: int = Field(default=1, ge=0, description="Connections kept open per pool.")
    pool_max_size: int = Field(default=8, ge=1, description="Connections at most per pool.")
    connect_timeout_s: float = Field(default=5.0, gt=0, description="Connect timeout.")
    command_timeout_s: float = Field(default=30.0, gt=0, description="Timeout of one query.")
    replica_max_lag_s: float = Field(
        default=5.0, ge=0, description="Analytics skip a replica this far behind the primary."
    )

    @field_validator("primary_url")
    @classmethod
    def _primary(cls, value: str | None) -> str | None:
        return None if value is None else _check_postgres_url(value)

    @field_validator("replica_urls")
    @classmethod
    def _replicas(cls, value: list[str]) -> list[str]:
        return [_check_postgres_url(url) for url in value]


class MqttSettings(_Section):
    """The broker the engine subscribes to."""

    url: str = Field(
        default="mqtt://127.0.0.1:18830",
        description="mqtt://host:port, or mqtts://host:port for TLS.",
    )
    username: str = Field(default="sensorium-engine", description="The engine's broker user.")
    password: SecretStr | None = Field(default=None, description="The engine's broker password.")
    client_id: str = Field(
        default="sensorium-engine", description="Client id of the persistent session."
    )
    ca_file: Path | None = Field(default=None, description="CA bundle to verify mqtts://.")
    topic: str = Field(default="devices/+/telemetry", description="Subscription filter.")
    connect_timeout_s: float = Field(default=5.0, gt=0, description="Connect timeout.")

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("mqtt", "mqtts") or not parts.hostname:
            raise ValueError("must be mqtt://host:port or mqtts://host:port")
        return value

    @property
    def host(self) -> str:
        return urlsplit(self.url).hostname or "127.0.0.1"

    @property
    def port(self) -> int:
        parts = urlsplit(self.url)
        return parts.port or (8883 if parts.scheme == "mqtts" else 1883)

    @property
    def tls(self) -> bool:
        return urlsplit(self.url).scheme == "mqtts"


class HttpSettings(_Section):
    """The HTTP(S) listener of the API."""

    host: str = Field(default="127.0.0.1", description="Address to listen on.")
    port: int = Field(default=8080, ge=0, le=65535, description="Port to listen on.")
    tls_cert: Path | None = Field(default=None, description="PEM certificate: serve HTTPS.")
    tls_key: Path | None = Field(default=None, description="PEM private key of tls_cert.")
    shutdown_timeout_s: float = Field(default=10.0, gt=0, description="Graceful stop deadline.")


class IngestSettings(_Section):
    """Limits at the edge, applied to MQTT and HTTP alike."""

    max_payload_bytes: int = Field(default=65536, ge=64, description="Largest accepted payload.")
    max_batch_items: int = Field(default=1000, ge=1, description="Largest JSON array accepted.")
    max_future_skew_s: float = Field(
        default=300.0, ge=0, description="How far ahead of now a timestamp may be."
    )
    http_requests_per_device_per_s: float = Field(
        default=20.0, gt=0, description="HTTP ingest requests per device per second (burst 2 s)."
    )


class AuthSettings(_Section):
    """Logins to the HTTP API: JWT access tokens, rotated refresh tokens, throttling."""

    jwt_algorithm: Literal["HS256", "RS256", "EdDSA"] = Field(
        default="HS256", description="JWT signature algorithm (the only one accepted)."
    )
    jwt_secret: SecretStr | None = Field(
        default=None, description="HS256 key (`up` generates one; required by `run`)."
    )
    jwt_private_key_file: Path | None = Field(
        default=None, description="PEM private key that signs RS256/EdDSA tokens."
    )
    jwt_public_key_file: Path | None = Field(
        default=None, description="PEM public key that checks RS256/EdDSA tokens."
    )
    issuer: str = Field(default="sensorium", description="JWT `iss`, checked.")
    audience: str = Field(default="sensorium-api", description="JWT `aud`, checked.")
    access_ttl_s: int = Field(default=900, ge=10, description="Access token lifetime.")
    refresh_ttl_s: int = Field(default=2_592_000, ge=60, description="Refresh token lifetime.")
    login_attempts_per_account: int = Field(
        default=5, ge=1, description="Failed logins per account per window, then 429."
    )
    login_attempts_per_address: int = Field(
        default=20, ge=1, description="Failed logins per client address per window, then 429."
    )
    login_window_s: float = Field(default=300.0, gt=0, description="Login throttle window.")
    requests_per_user_per_s: float = Field(
        default=50.0, gt=0, description="API requests per user per second (burst: 2 s worth)."
    )


class EngineSettings(_Section):
    """The ingest engine: actors, writer, MQTT reader."""

    mailbox_size: int = Field(default=64, ge=1, description="Messages a device actor queues.")
    idle_timeout_s: float = Field(
        default=60.0, gt=0, description="Idle seconds before a device actor passivates."
    )
    batch_rows: int = Field(default=20_000, ge=1, description="Most readings in one COPY batch.")
    batch_rows_max: int = Field(
        default=100_000,
        ge=1,
        description="Most readings in one batch while the previous one still commits.",
    )
    batch_age_ms: float = Field(
        default=20.0, ge=0, description="Longest wait to fill a batch before committing it."
    )
    writer_queue: int = Field(default=1024, ge=1, description="Write requests queued at most.")
    max_inflight_messages: int = Field(
        default=50_000, ge=1, description="MQTT messages read but not yet committed, at most."
    )
    shutdown_timeout_s: float = Field(default=20.0, gt=0, description="Drain deadline on stop.")
    no_data_sweep_s: float = Field(
        default=5.0, gt=0, description="How often devices are checked for no-data alerts."
    )
    housekeeping_interval_s: float = Field(
        default=60.0, gt=0, description="How often minute rollups are folded and old ids pruned."
    )
    rollup_settle_s: float = Field(
        default=120.0, ge=0, description="How long after a minute ends its rollups are folded."
    )
    http_ack_timeout_s: float = Field(
        default=30.0, gt=0, description="How long an HTTP ingest waits for its commit."
    )
    poison_marker: str | None = Field(
        default=None,
        description="Fault injection for tests: a payload containing it crashes its actor.",
    )


class StackSettings(_Section):
    """The embedded default of ``sensorium up``: ports and system binaries."""

    primary_port: int = Field(default=54320, ge=1, le=65535, description="PostgreSQL primary.")
    replica_ports: list[int] = Field(
        default_factory=lambda: [54321, 54322], description="PostgreSQL replicas."
    )
    mqtt_port: int = Field(default=18830, ge=1, le=65535, description="Mosquitto, plain MQTT.")
    mqtt_tls_port: int = Field(default=8883, ge=1, le=65535, description="Mosquitto, MQTT/TLS.")
    postgres_bin_dir: Path | None = Field(
        default=None, description="Folder of initdb/pg_ctl (default: found automatically)."
    )
    mosquitto_bin: str = Field(default="mosquitto", description="The mosquitto binary.")
    shared_buffers: str = Field(default="512MB", description="PostgreSQL shared_buffers.")
    prometheus_port: int = Field(
        default=19090, ge=1, le=65535, description="Prometheus of `up --with-prometheus`."
    )
    prometheus_scrape_s: float = Field(
        default=5.0, gt=0, description="Its scrape and rule evaluation interval."
    )


class AlertSettings(_Section):
    """Alert policies: flapping, and how often one person may be messaged."""

    flap_opens: int = Field(
        default=5,
        ge=0,
        description="Openings of one rule on one device within flap_window_s that make it "
        "flap (its changes are not notified until it settles); 0: off.",
    )
    flap_window_s: float = Field(
        default=600.0, gt=0, description="The flapping window; also how long it must settle."
    )
    recipient_max_messages: int = Field(
        default=10,
        ge=1,
        description="Emails (and, apart, SMS) to one recipient in any recipient_window_s; "
        "what is due beyond that waits and goes as one digest.",
    )
    recipient_window_s: float = Field(
        default=600.0, gt=0, description="The window of recipient_max_messages."
    )
    digest_max_items: int = Field(
        default=500, ge=2, description="Notifications one digest carries at most."
    )


class ArchiveSettings(_Section):
    """Retention: readings older than the window go to S3-compatible storage."""

    enabled: bool = Field(default=False, description="Run the archive job in the engine.")
    retention_days: int = Field(
        default=90, ge=1, description="Days of readings kept in PostgreSQL (whole UTC days)."
    )
    interval_s: float = Field(default=3600.0, gt=0, description="How often the job runs.")
    bucket: str = Field(default="sensorium-archive", description="The bucket.")
    endpoint_url: str | None = Field(
        default=None, description="S3 endpoint (MinIO: http://minio:9000); default: AWS."
    )
    access_key_id: str | None = Field(default=None, description="Access key id.")
    secret_access_key: SecretStr | None = Field(default=None, description="Secret key.")
    region: str = Field(default="us-east-1", description="Region.")


class SmtpSettings(_Section):
    """SMTP email (used when no SendGrid API key is set)."""

    host: str | None = Field(default=None, description="SMTP server host.")
    port: int = Field(default=587, ge=1, le=65535, description="SMTP server port.")
    username: str | None = Field(default=None, description="SMTP user.")
    password: SecretStr | None = Field(default=None, description="SMTP password.")
    starttls: bool = Field(default=True, description="Upgrade with STARTTLS.")
    from_: str = Field(default="sensorium@localhost", alias="from", description="Sender address.")
    ca_file: Path | None = Field(
        default=None, description="CA certificates trusted for STARTTLS (default: the system's)."
    )


class SendgridSettings(_Section):
    """SendGrid email."""

    api_key: SecretStr | None = Field(default=None, description="API key; set = use SendGrid.")
    base_url: str = Field(default="https://api.sendgrid.com", description="API base URL.")


class TwilioSettings(_Section):
    """Twilio SMS."""

    account_sid: str | None = Field(default=None, description="Account SID.")
    auth_token: SecretStr | None = Field(default=None, description="Auth token.")
    from_: str | None = Field(default=None, alias="from", description="Sender number.")
    base_url: str = Field(default="https://api.twilio.com", description="API base URL.")


class Settings(BaseSettings):
    """All of Sensorium's settings."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter="__",
        extra="forbid",
        frozen=True,
        populate_by_name=True,
    )

    state_dir: Path = Field(default=Path(".sensorium"), description="State folder of `up`.")
    log_format: Literal["json", "text"] = Field(default="json", description="Log lines.")
    log_level: Literal["debug", "info", "warning", "error"] = Field(
        default="info", description="Lowest level logged."
    )
    admin_email: str = Field(
        default="admin@sensorium.local", description="Admin user created by `up`."
    )
    admin_password: SecretStr | None = Field(
        default=None, description="Admin password (default: generated and printed once)."
    )
    database: DatabaseSettings = Field(default_factory=DatabaseSettings)
    mqtt: MqttSettings = Field(default_factory=MqttSettings)
    http: HttpSettings = Field(default_factory=HttpSettings)
    ingest: IngestSettings = Field(default_factory=IngestSettings)
    auth: AuthSettings = Field(default_factory=AuthSettings)
    engine: EngineSettings = Field(default_factory=EngineSettings)
    stack: StackSettings = Field(default_factory=StackSettings)
    alerts: AlertSettings = Field(default_factory=AlertSettings)
    archive: ArchiveSettings = Field(default_factory=ArchiveSettings)
    smtp: SmtpSettings = Field(default_factory=SmtpSettings)
    sendgrid: SendgridSettings = Field(default_factory=SendgridSettings)
    twilio: TwilioSettings = Field(default_factory=TwilioSettings)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, TomlConfigSettingsSource(settings_cls))


def _env_name(location: tuple[int | str, ...]) -> str:
    return ENV_PREFIX + "__".join(str(part).upper() for part in location)


def _describe(exc: ValidationError, source: str) -> str:
    lines = []
    for error in exc.errors():
        location = tuple(error["loc"])
        dotted = ".".join(str(part) for part in location) or "settings"
        lines.append(f"invalid setting {dotted} ({_env_name(location)}{source}): {error['msg']}")
    return "\n".join(lines)


def load_settings(config_file: Path | None = None, **overrides: Any) -> Settings:
    """Read the settings; raise `ConfigError` naming the bad field.

    ``config_file`` defaults to ``$SENSORIUM_CONFIG``; ``overrides`` (from command-line
    options) win over both the environment and the file.
    """
    if config_file is None and os.environ.get("SENSORIUM_CONFIG"):
        config_file = Path(os.environ["SENSORIUM_CONFIG"])
    if config_file is not None and not config_file.is_file():
        raise ConfigError(f"config file {config_file} does not exist")

    class _FromFile(Settings):
        model_config = SettingsConfigDict(toml_file=config_file)

    source = f" or {config_file}" if config_file else ""
    try:
        return _FromFile(**overrides)
    except ValidationError as exc:
        raise ConfigError(_describe(exc, source)) from None
    except ValueError as exc:  # a TOML syntax error
        raise ConfigError(f"config file {config_file}: {exc}") from None
