"""moto's S3 server as a real HTTP endpoint for the tests (the S3 stand-in)."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest


@contextlib.contextmanager
def running_moto() -> Iterator[str]:
    """moto's server on a free loopback port for as long as the block runs; its URL."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "moto's server did not start"
                time.sleep(0.2)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.terminate()
        server.wait(10)


def s3_env(url: str, bucket: str) -> dict[str, str]:
    """The settings that point a stack's object storage at ``url``."""
    return {
        "SENSORIUM_ARCHIVE__ENDPOINT_URL": url,
        "SENSORIUM_ARCHIVE__BUCKET": bucket,
        "SENSORIUM_ARCHIVE__ACCESS_KEY_ID": "test",
        "SENSORIUM_ARCHIVE__SECRET_ACCESS_KEY": "test",
    }


@pytest.fixture(scope="module")
def moto_url() -> Iterator[str]:
    with running_moto() as url:
        yield url
