"""`POST /api/v1/devices/{id}/exports`: a device's readings of a metric over a range,
written to object storage (moto's S3 server) as CSV or Parquet, fetched back through
the presigned URL the answer gives; tenant-scoped; bad queries are a 400."""

from __future__ import annotations

import csv
import io
import time
from collections.abc import Iterator

import httpx
import pyarrow.parquet as pq
import pytest

from tests.s3_standin import running_moto, s3_env
from tests.support import StackHandle, new_user_token, wait_for

pytestmark = pytest.mark.slow

ADMIN = {"email": "admin@example.com", "password": "correct horse battery staple"}


@pytest.fixture(scope="module")
def exporting() -> Iterator[StackHandle]:
    with running_moto() as s3:
        handle = StackHandle.create(extra_env=s3_env(s3, "exports"))
        try:
            handle.up()
            yield handle
        finally:
            handle.down("--purge")


def test_a_range_is_exported_as_csv_and_parquet_behind_a_presigned_url(
    exporting: StackHandle,
) -> None:
    stack = exporting
    token = httpx.post(f"{stack.http_url}/api/v1/auth/login", json=ADMIN).json()["access_token"]
    auth = {"Authorization": f"Bearer {token}"}
    device = stack.create_device("exported-meter")
    start_ms = int(time.time() * 1000) - 600_000
    readings = [{"ts": start_ms + i * 1000, "seq": i, "metrics": {"power": 1.5 + i}}
                for i in range(50)]  # fmt: skip
    answer = httpx.post(
        f"{stack.http_url}/api/v1/telemetry",
        headers={"Authorization": f"Bearer {device['token']}"},
        json=readings,
        timeout=30,
    )
    assert answer.status_code == 200, answer.text
    exports = f"{stack.http_url}/api/v1/devices/{device['id']}/exports"
    window = {"metric": "power", "from": str(start_ms + 10_000), "to": str(start_ms + 40_000)}

    def export(kind: str) -> httpx.Response:
        return httpx.post(exports, headers=auth, params=window | {"format": kind}, timeout=30)

    # Replicas serve it: wait until they have the readings.
    wait_for(lambda: export("csv").json().get("readings") == 30, timeout=30)
    made = export("csv")
    assert made.status_code == 201, made.text
    body = made.json()
    assert (body["format"], body["readings"], body["expires_in"]) == ("csv", 30, 3600)
    assert body["key"].startswith(f"exports/1/{device['id']}/power-")
    fetched = httpx.get(body["url"], timeout=30)
    assert fetched.status_code == 200
    rows = list(csv.DictReader(io.StringIO(fetched.text)))
    assert [int(r["seq"]) for r in rows] == list(range(10, 40))
    assert [float(r["value"]) for r in rows] == [1.5 + i for i in range(10, 40)]

    parquet = export("parquet").json()
    table = pq.read_table(io.BytesIO(httpx.get(parquet["url"], timeout=30).content))
    assert table.column("seq").to_pylist() == list(range(10, 40))
    assert table.column("value").to_pylist() == [1.5 + i for i in range(10, 40)]

    # Another tenant's caller: as if the device did not exist. Bad queries: 400.
    stranger = {"Authorization": f"Bearer {new_user_token(stack, 'viewer', 'elsewhere')}"}
    assert httpx.post(exports, headers=stranger, params=window).status_code == 404
    for params in (
        window | {"format": "xlsx"},
        {"from": window["from"], "to": window["to"]},
        window | {"from": "yesterday"},
        window | {"from": window["to"], "to": window["from"]},
    ):
        refused = httpx.post(exports, headers=auth, params=params)
        assert refused.status_code == 400, (params, refused.text)
