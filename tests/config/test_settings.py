from __future__ import annotations

from pathlib import Path

import pytest

from sensorium.config import Settings, load_settings
from sensorium.errors import ConfigError


def test_defaults_are_designs_ports() -> None:
    settings = load_settings()
    assert settings.stack.primary_port == 54320
    assert settings.stack.replica_ports == [54321, 54322]
    assert settings.stack.mqtt_port == 18830
    assert settings.http.port == 8080
    assert settings.state_dir == Path(".sensorium")


def test_environment_with_nested_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SENSORIUM_DATABASE__PRIMARY_URL", "postgresql://u:p@db:5432/s")
    monkeypatch.setenv("SENSORIUM_DATABASE__REPLICA_URLS", '["postgresql://u:p@r1:5432/s"]')
    monkeypatch.setenv("SENSORIUM_SMTP__HOST", "mail.example.com")
    monkeypatch.setenv("SENSORIUM_TWILIO__FROM", "+15550100")
    settings = load_settings()
    assert settings.database.primary_url == "postgresql://u:p@db:5432/s"
    assert settings.database.replica_urls == ["postgresql://u:p@r1:5432/s"]
    assert settings.smtp.host == "mail.example.com"
    assert settings.twilio.from_ == "+15550100"


def test_toml_file_and_environment_wins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "sensorium.toml"
    config.write_text(
        'log_format = "text"\n'
        '[http]\nport = 9000\nhost = "0.0.0.0"\n'
        '[mqtt]\nurl = "mqtts://broker.example.com:8883"\n'
        '[smtp]\nfrom = "alerts@example.com"\n'
    )
    monkeypatch.setenv("SENSORIUM_HTTP__PORT", "9100")
    settings = load_settings(config)
    assert settings.log_format == "text"
    assert settings.http.host == "0.0.0.0"
    assert settings.http.port == 9100  # the environment wins over the file
    assert settings.mqtt.tls and settings.mqtt.port == 8883
    assert settings.smtp.from_ == "alerts@example.com"


def test_config_file_from_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "s.toml"
    config.write_text("[ingest]\nmax_payload_bytes = 1024\n")
    monkeypatch.setenv("SENSORIUM_CONFIG", str(config))
    assert load_settings().ingest.max_payload_bytes == 1024


@pytest.mark.parametrize(
    ("env", "value", "named"),
    [
        ("SENSORIUM_HTTP__PORT", "eighty", "http.port (SENSORIUM_HTTP__PORT)"),
        ("SENSORIUM_HTTP__PORT", "70000", "http.port (SENSORIUM_HTTP__PORT)"),
        ("SENSORIUM_DATABASE__PRIMARY_URL", "mysql://x", "database.primary_url"),
        ("SENSORIUM_MQTT__URL", "http://broker", "mqtt.url (SENSORIUM_MQTT__URL)"),
        ("SENSORIUM_LOG_FORMAT", "xml", "log_format (SENSORIUM_LOG_FORMAT)"),
    ],
)
def test_invalid_values_name_the_field(
    monkeypatch: pytest.MonkeyPatch, env: str, value: str, named: str
) -> None:
    monkeypatch.setenv(env, value)
    with pytest.raises(ConfigError, match=named.replace("(", r"\(").replace(")", r"\)")):
        load_settings()


def test_unknown_key_in_file_is_refused(tmp_path: Path) -> None:
    config = tmp_path / "s.toml"
    config.write_text("[http]\nprot = 1\n")
    with pytest.raises(ConfigError, match=r"http\.prot"):
        load_settings(config)


def test_missing_or_broken_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(tmp_path / "nope.toml")
    broken = tmp_path / "broken.toml"
    broken.write_text("[http\n")
    with pytest.raises(ConfigError, match=r"broken\.toml"):
        load_settings(broken)


def test_settings_are_frozen() -> None:
    settings: Settings = load_settings()
    with pytest.raises(Exception, match="frozen"):
        settings.http.port = 1  # type: ignore[misc]
