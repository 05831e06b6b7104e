"""Pictures on local disk: what the backend does with keys, missing files and disk errors."""

import logging
from typing import Any

import pytest

import storage
from tests.conftest import TEST_BUCKET

pytestmark = pytest.mark.anyio


@pytest.fixture
def backend(tmp_path, monkeypatch):
    """The local-disk backend, also as the app's storage."""
    local = storage.LocalStorage(tmp_path / "media")
    monkeypatch.setattr(storage, "get_storage", lambda: local)
    return local


async def test_a_key_outside_the_media_folder_is_refused_by_name(backend):
    with pytest.raises(storage.StorageError) as refused:
        await backend.delete("../../etc/passwd")
    assert str(refused.value) == "key outside the media folder: '../../etc/passwd'"


async def test_deleting_a_picture_that_is_already_gone_succeeds(backend, caplog):
    with caplog.at_level(logging.ERROR, logger="storage"):
        await backend.delete("profile_pics/gone.jpg")
        await storage.delete_picture_quietly("gone.jpg")
    assert caplog.records == []


async def test_a_picture_that_cannot_be_deleted_is_logged_with_the_reason(backend, caplog):
    (backend.root / "profile_pics" / "stuck.jpg").mkdir(parents=True)  # unlink() refuses it

    with pytest.raises(storage.StorageError, match="Is a directory"):
        await backend.delete("profile_pics/stuck.jpg")
    with caplog.at_level(logging.ERROR, logger="storage"):
        await storage.delete_picture_quietly("stuck.jpg")  # an orphan file, not a failed request

    assert [record.getMessage() for record in caplog.records] == [
        "Could not delete old profile picture stuck.jpg"
    ]
    assert "StorageError: [Errno 21] Is a directory" in caplog.text


async def test_saving_makes_the_folders_a_key_needs(backend):
    """The media folder may not exist yet (a new disk, a new volume): the first picture makes
    it, and the folder of its key."""
    assert not backend.root.exists()
    await backend.save("profile_pics/first.jpg", b"jpeg bytes", "image/jpeg")
    assert (backend.root / "profile_pics" / "first.jpg").read_bytes() == b"jpeg bytes"


async def test_a_picture_that_cannot_be_written_fails_with_the_reason(backend):
    (backend.root / "profile_pics" / "taken.jpg").mkdir(parents=True)  # write_bytes() refuses

    with pytest.raises(storage.StorageError, match="Is a directory"):
        await backend.save("profile_pics/taken.jpg", b"jpeg", "image/jpeg")


def test_an_s3_endpoint_loses_only_its_trailing_slash():
    backend = storage.S3Storage("pics", region="auto", endpoint_url="http://127.0.0.1:9000/BOX/")
    assert backend.url("profile_pics/a.jpg") == "http://127.0.0.1:9000/BOX/pics/profile_pics/a.jpg"


def test_the_s3_client_gives_up_on_a_hung_store_within_seconds(aws):
    """A hung S3 must not hold a request for minutes: 5 s to connect, 10 s to answer, and
    the first try plus two retries."""
    config: Any = storage.S3Storage(
        "pics", region="us-east-1"
    ).client.meta.config  # botocore's Config sets these attributes dynamically
    assert (config.connect_timeout, config.read_timeout) == (5, 10)
    assert config.retries["total_max_attempts"] == 3


async def test_an_s3_refusal_fails_with_the_reason(aws):
    backend = storage.S3Storage("no-such-bucket", region="us-east-1")
    with pytest.raises(storage.StorageError, match="NoSuchBucket"):
        await backend.save("profile_pics/a.jpg", b"jpeg", "image/jpeg")


async def test_a_picture_on_s3_is_served_as_a_jpeg(s3):
    backend = storage.S3Storage(TEST_BUCKET, region="us-east-1")
    await backend.save("profile_pics/a.jpg", b"jpeg", "image/jpeg")
    stored = s3.head_object(Bucket=TEST_BUCKET, Key="profile_pics/a.jpg")
    assert stored["ContentType"] == "image/jpeg"  # a browser shows it rather than downloading it
