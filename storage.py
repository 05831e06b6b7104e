"""Where pictures live: an S3 bucket when S3_BUCKET_NAME is set, else local disk.

Both backends store bytes under a key such as `profile_pics/<hex>.jpg` (a profile picture) or
`post_images/<hex>.webp` (a picture in a post) and answer a public URL for it. Every call that
touches the network or the disk runs off the event loop.
"""

import logging
import uuid
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError
from starlette.concurrency import run_in_threadpool

from config import settings

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

logger = logging.getLogger(__name__)

PICTURE_PREFIX = "profile_pics"
POST_IMAGE_PREFIX = "post_images"
DEFAULT_PICTURE_URL = "/static/profile_pics/default.jpg"
MEDIA_URL = "/media"


class StorageError(Exception):
    """The backend refused or could not be reached."""


class Storage(Protocol):
    async def save(self, key: str, data: bytes, content_type: str) -> None: ...
    async def delete(self, key: str) -> None: ...
    def url(self, key: str) -> str: ...


class S3Storage:
    def __init__(
        self,
        bucket: str,
        *,
        region: str,
        endpoint_url: str | None = None,
        access_key_id: str | None = None,
        secret_access_key: str | None = None,
    ):
        self.bucket = bucket
        self.region = region
        self.endpoint_url = endpoint_url.rstrip("/") if endpoint_url else None
        self._client_kwargs: dict[str, Any] = {
            "region_name": region,
            "endpoint_url": endpoint_url,
            "aws_access_key_id": access_key_id,
            "aws_secret_access_key": secret_access_key,
            # Fail fast: a hung S3 must not hold a request for minutes.
            "config": Config(connect_timeout=5, read_timeout=10, retries={"max_attempts": 2}),
        }

    @property
    def client(self) -> "S3Client":
        # boto3 clients are thread-safe; made on first use (in a worker thread: building one
        # loads botocore's service models, which is blocking) so tests can mock AWS first.
        if not hasattr(self, "_client"):
            self._client = boto3.client("s3", **self._client_kwargs)
        return self._client

    async def _call(self, operation: str, **params: object) -> None:
        """One S3 operation, client included, off the event loop."""
        try:
            await run_in_threadpool(lambda: getattr(self.client, operation)(**params))
        except (BotoCoreError, ClientError) as exc:
            raise StorageError(str(exc)) from exc

    async def save(self, key: str, data: bytes, content_type: str) -> None:
        await self._call(
            "put_object", Bucket=self.bucket, Key=key, Body=data, ContentType=content_type
        )

    async def delete(self, key: str) -> None:
        await self._call("delete_object", Bucket=self.bucket, Key=key)

    def url(self, key: str) -> str:
        if self.endpoint_url:
            return f"{self.endpoint_url}/{self.bucket}/{key}"
        return f"https://{self.bucket}.s3.{self.region}.amazonaws.com/{key}"


class LocalStorage:
    def __init__(self, root: Path):
        self.root = root

    def _path(self, key: str) -> Path:
        path = (self.root / key).resolve()
        if not path.is_relative_to(self.root.resolve()):
            raise StorageError(f"key outside the media folder: {key!r}")
        return path

    async def save(self, key: str, data: bytes, content_type: str) -> None:
        path = self._path(key)

        def write() -> None:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)

        try:
            await run_in_threadpool(write)
        except OSError as exc:
            raise StorageError(str(exc)) from exc

    async def delete(self, key: str) -> None:
        try:
            await run_in_threadpool(self._path(key).unlink, missing_ok=True)
        except OSError as exc:
            raise StorageError(str(exc)) from exc

    def url(self, key: str) -> str:
        return f"{MEDIA_URL}/{key}"


@cache
def get_storage() -> Storage:
    if settings.s3_bucket_name:
        secret = settings.s3_secret_access_key
        return S3Storage(
            settings.s3_bucket_name,
            region=settings.s3_region,
            endpoint_url=settings.s3_endpoint_url,
            access_key_id=settings.s3_access_key_id,
            secret_access_key=secret.get_secret_value() if secret else None,
        )
    return LocalStorage(settings.media_dir)


def picture_key(image_file: str) -> str:
    return f"{PICTURE_PREFIX}/{image_file}"


def public_url(image_file: str | None) -> str:
    if image_file is None:
        return DEFAULT_PICTURE_URL
    return get_storage().url(picture_key(image_file))


async def delete_picture_quietly(image_file: str) -> None:
    """Remove an old picture; a failure leaves an orphan object, never a failed request."""
    try:
        await get_storage().delete(picture_key(image_file))
    except StorageError:
        logger.exception("Could not delete old profile picture %s", image_file)


def new_post_image_key() -> str:
    """Where a new picture for posts goes: a name nobody can guess or collide with."""
    return f"{POST_IMAGE_PREFIX}/{uuid.uuid4().hex}.webp"


async def delete_post_image_quietly(key: str) -> None:
    """Remove a post picture that no row counts (its upload failed after it was stored); a
    failure leaves an orphan object, never a failed request."""
    try:
        await get_storage().delete(key)
    except StorageError:
        logger.exception("Could not delete post picture %s", key)
