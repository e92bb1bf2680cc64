"""Object storage (S3, MinIO, moto's server in the tests) through boto3 with an
``endpoint_url``. boto3 blocks: every call runs in a worker thread."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import trio
from botocore.config import Config
from botocore.exceptions import ClientError

from sensorium.config import ArchiveSettings

__all__ = ["ObjectStore", "StoreOptions", "store_of"]


@dataclass(frozen=True, slots=True)
class StoreOptions:
    bucket: str
    endpoint_url: str | None = None
    access_key_id: str | None = None
    secret_access_key: str | None = None
    region: str = "us-east-1"


class ObjectStore:
    def __init__(self, options: StoreOptions) -> None:
        self.bucket = options.bucket
        self._client: Any = boto3.client(
            "s3",
            endpoint_url=options.endpoint_url,
            aws_access_key_id=options.access_key_id,
            aws_secret_access_key=options.secret_access_key,
            region_name=options.region,
            config=Config(retries={"max_attempts": 3, "mode": "standard"}, connect_timeout=10),
        )
        self._limiter = trio.CapacityLimiter(4)

    async def _call(self, method: str, **kwargs: Any) -> Any:
        call = getattr(self._client, method)
        return await trio.to_thread.run_sync(lambda: call(**kwargs), limiter=self._limiter)

    async def ensure_bucket(self) -> None:
        try:
            await self._call("head_bucket", Bucket=self.bucket)
        except ClientError:
            await self._call("create_bucket", Bucket=self.bucket)

    async def put(self, key: str, data: bytes) -> None:
        await self._call("put_object", Bucket=self.bucket, Key=key, Body=data)

    async def put_file(self, key: str, path: Path) -> None:
        """Upload a file (in parts when it is large)."""
        await self._call("upload_file", Filename=str(path), Bucket=self.bucket, Key=key)

    async def get_file(self, key: str, path: Path) -> None:
        await self._call("download_file", Bucket=self.bucket, Key=key, Filename=str(path))

    async def get(self, key: str) -> bytes:
        answer = await self._call("get_object", Bucket=self.bucket, Key=key)
        body: bytes = await trio.to_thread.run_sync(answer["Body"].read, limiter=self._limiter)
        return body

    async def keys(self, prefix: str = "") -> list[str]:
        found: list[str] = []
        token: str | None = None
        while True:
            extra = {"ContinuationToken": token} if token else {}
            page = await self._call("list_objects_v2", Bucket=self.bucket, Prefix=prefix, **extra)
            found += [item["Key"] for item in page.get("Contents", [])]
            if not page.get("IsTruncated"):
                return found
            token = page["NextContinuationToken"]

    async def presigned_get(self, key: str, *, expires_s: int = 3600) -> str:
        url: str = await self._call(
            "generate_presigned_url",
            ClientMethod="get_object",
            Params={"Bucket": self.bucket, "Key": key},
            ExpiresIn=expires_s,
        )
        return url


def store_of(settings: ArchiveSettings) -> ObjectStore:
    """The store the settings name."""
    secret = settings.secret_access_key
    return ObjectStore(
        StoreOptions(
            bucket=settings.bucket,
            endpoint_url=settings.endpoint_url,
            access_key_id=settings.access_key_id,
            secret_access_key=secret.get_secret_value() if secret else None,
            region=settings.region,
        )
    )
