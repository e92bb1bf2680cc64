"""Every package re-exports its public names, and `__all__` says exactly what they are."""

from __future__ import annotations

import importlib

import pytest

PACKAGES = [
    "sensorium.engine",
    "sensorium.actors",
    "sensorium.sources",
    "sensorium.http",
    "sensorium.storage",
    "sensorium.stack",
    "sensorium.config",
    "sensorium.bench",
]


@pytest.mark.parametrize("name", PACKAGES)
def test_all_names_exist_and_are_public(name: str) -> None:
    module = importlib.import_module(name)
    exported = module.__all__
    assert len(set(exported)) == len(exported)
    for symbol in exported:
        assert not symbol.startswith("_")
        assert hasattr(module, symbol), f"{name}.{symbol} is in __all__ but missing"


def test_engine_knows_nothing_of_iot_web_or_database() -> None:
    """The runtime imports no other part of Sensorium (DESIGN.md's import rule)."""
    import ast
    import pathlib

    engine = pathlib.Path(importlib.import_module("sensorium.engine").__file__).parent
    for source in engine.glob("*.py"):
        tree = ast.parse(source.read_text())
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.ImportFrom)
                and node.module
                and node.module.startswith("sensorium.")
            ):
                assert node.module.startswith("sensorium.engine"), (source.name, node.module)
