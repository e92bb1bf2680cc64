from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from sensorium.stack import raise_open_file_limit
from tests.s3_standin import moto_url  # noqa: F401 (a fixture for every test)
from tests.saas_standins import saas  # noqa: F401 (a fixture for every test)
from tests.smtp_standin import smtp_server  # noqa: F401 (a fixture for every test)
from tests.support import StackHandle
from tests.webhook_receiver import receiver  # noqa: F401 (a fixture for every test)

# A thousand simulated devices are a thousand sockets in this process.
raise_open_file_limit()


@pytest.fixture(scope="session")
def stack() -> Iterator[StackHandle]:
    """The embedded stack, started exactly as `sensorium up --detach` starts it.

    Session-scoped and synchronous (DEPENDENCIES.md, pitfall 3): tests open their own
    connections. Tests that stop a component start it again before they end.
    """
    handle = StackHandle.create()
    try:
        handle.up()
        yield handle
    finally:
        # SENSORIUM_TEST_KEEP_STATE=1 keeps the state folder (logs) for a post-mortem.
        handle.down(*(() if os.environ.get("SENSORIUM_TEST_KEEP_STATE") else ("--purge",)))
