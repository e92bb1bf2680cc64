from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sensorium.storage import (
    hash_password,
    mosquitto_password_hash,
    verify_mosquitto_password,
    verify_password,
)
from sensorium.storage._credentials import new_device_id


@given(st.text(min_size=1, max_size=64))
@settings(max_examples=25)
def test_mosquitto_hash_verifies_its_password_only(password: str) -> None:
    stored = mosquitto_password_hash(password)
    assert stored.startswith("$7$101$")
    assert verify_mosquitto_password(password, stored)
    assert not verify_mosquitto_password(password + "x", stored)


@pytest.mark.skipif(shutil.which("mosquitto_passwd") is None, reason="needs mosquitto")
def test_our_verifier_accepts_mosquitto_passwd_output(tmp_path: Path) -> None:
    """Mosquitto's own tool and our hash agree on the format."""
    file = tmp_path / "pw"
    subprocess.run(["mosquitto_passwd", "-c", "-b", str(file), "dev", "s3cret"], check=True)
    stored = file.read_text().strip().split(":", 1)[1]
    assert verify_mosquitto_password("s3cret", stored)
    assert not verify_mosquitto_password("s3cre", stored)


def test_argon2id_passwords() -> None:
    stored = hash_password("hunter2hunter2")
    assert stored.startswith("$argon2id$")
    assert verify_password("hunter2hunter2", stored)
    assert not verify_password("hunter2", stored)
    assert not verify_password("x", "not a hash")


def test_device_ids_match_the_public_pattern() -> None:
    ids = {new_device_id() for _ in range(1000)}
    assert len(ids) == 1000
    assert all(re.fullmatch(r"[A-Za-z0-9_-]{1,64}", i) for i in ids)
