"""The README is the newcomer's map: it must name every setting and the two commands."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel

from sensorium.config import Settings

README = Path(__file__).resolve().parents[1] / "README.md"


def _env_names(model: type[BaseModel], prefix: str) -> list[str]:
    names = []
    for name, field in model.model_fields.items():
        key = (field.alias or name).upper()
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            names += _env_names(annotation, f"{prefix}{key}__")
        else:
            names.append(prefix + key)
    return names


def test_every_setting_is_documented() -> None:
    text = README.read_text()
    missing = [name for name in _env_names(Settings, "SENSORIUM_") if f"`{name}`" not in text]
    assert missing == []


def test_quick_start_is_the_two_commands() -> None:
    text = README.read_text()
    quick_start = text.split("## Quick start", 1)[1].split("##", 1)[0]
    commands = [
        line.split("#")[0].strip()
        for line in quick_start.split("```sh", 1)[1].split("```", 1)[0].strip().splitlines()
    ]
    assert commands == ["make up", "make test"]
