"""Photos in an S3-compatible bucket (shared/media_s3.py) against a real SeaweedFS (deploy/local/seaweedfs.sh): the
same MediaStore contract as the folder store; wrong credentials and a server that does not answer are an unavailable
store (503 at the doors), never a missing photo; and the point of it: a photo uploaded through one intake instance
is served by another instance and by supervision, over real HTTP, because they share the bucket."""
from __future__ import annotations

import asyncio
import hashlib
import os
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any, AsyncIterator, Iterator

import httpx
import pytest
import uvicorn

from services.intake.bootstrap import build as build_intake
from services.supervision.bootstrap import build as build_supervision
from shared.media import FolderStore, MediaStore, MediaStoreUnavailable, store_from_settings
from shared.media_s3 import S3Store
from shared.runtime import Service
from tests.photos import phone_jpeg
from tests.s3server import S3Server, seaweedfs  # noqa: F401  (the session fixture)
from tests.support import free_port, grant

# The first test of a run waits for SeaweedFS to start (its session fixture), within this.
pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]

UPLOADER, OPERATOR = "s3-terminal", "s3-operator"


def new_id() -> tuple[str, bytes]:
    """A photo id no test used before, with its bytes (content-addressed: the id is their SHA-256)."""
    data = b"\xff\xd8 not really a jpeg " + os.urandom(64)
    return hashlib.sha256(data).hexdigest(), data


def s3_store(server: S3Server, **changes: Any) -> S3Store:
    values = {"endpoint": server.endpoint, "bucket": server.bucket, "access_key": server.access_key,
              "secret_key": server.secret_key, **changes}
    return S3Store(values.pop("endpoint"), values.pop("bucket"), values.pop("access_key"), values.pop("secret_key"),
                   timeout=values.pop("timeout", 10.0))


@pytest.fixture(params=["folder", "s3"])
def store(request, tmp_path) -> Iterator[MediaStore]:
    if request.param == "folder":
        yield FolderStore(tmp_path / "media")
    else:
        yield s3_store(request.getfixturevalue("seaweedfs"))


async def call(function, *args):  # type: ignore[no-untyped-def]
    """A store's call (blocking, like the services make it from a thread), bounded."""
    return await asyncio.wait_for(asyncio.to_thread(function, *args), 30)


async def test_the_store_contract_put_get_exists_idempotent_and_missing(store):
    media_id, data = new_id()
    assert await call(store.exists, media_id, "image") is False
    assert await call(store.get, media_id, "image") is None  # missing: None, not an error
    assert await call(store.put, media_id, "image", data) is True
    assert await call(store.exists, media_id, "image") is True
    assert await call(store.get, media_id, "image") == data
    # The thumbnail is its own key beside the image: not there until put.
    assert await call(store.exists, media_id, "thumbnail") is False
    assert await call(store.get, media_id, "thumbnail") is None
    assert await call(store.put, media_id, "thumbnail", b"small " + data) is True
    assert await call(store.get, media_id, "thumbnail") == b"small " + data
    # The same id again: answered False, the stored bytes unchanged (same id, same bytes).
    assert await call(store.put, media_id, "image", data) is False
    assert await call(store.get, media_id, "image") == data
    # Anything but an id never becomes a path or a key.
    for bad in ("../" + media_id[3:], media_id.upper(), media_id + "/x", ""):
        with pytest.raises(ValueError):
            await call(store.get, bad, "image")
        with pytest.raises(ValueError):
            await call(store.put, bad, "image", data)


async def test_the_objects_are_the_ids_in_the_bucket(seaweedfs):
    store = s3_store(seaweedfs)
    media_id, data = new_id()
    await call(store.put, media_id, "image", data)
    await call(store.put, media_id, "thumbnail", data[:10])
    keys = {item["Key"] for item in (await call(lambda: store._client.list_objects_v2(
        Bucket=seaweedfs.bucket, Prefix=media_id)))["Contents"]}
    assert keys == {media_id, f"{media_id}.thumbnail"}


async def test_wrong_credentials_are_refused_as_an_unavailable_store_never_as_a_missing_photo(seaweedfs):
    good = s3_store(seaweedfs)
    stored_id, data = new_id()
    await call(good.put, stored_id, "image", data)
    for wrong in (s3_store(seaweedfs, secret_key="not-the-secret-" + "x" * 24),
                  s3_store(seaweedfs, access_key="nobody", secret_key="whatever-secret-key-1234")):
        for action, args in ((wrong.get, (stored_id, "image")), (wrong.exists, (stored_id, "image")),
                             (wrong.get, (new_id()[0], "image")), (wrong.put, (new_id()[0], "image", data))):
            with pytest.raises(MediaStoreUnavailable) as refused:
                await call(action, *args)
            assert seaweedfs.endpoint in str(refused.value)
    # Nothing written with a wrong key pair.
    written_id, written = new_id()
    with pytest.raises(MediaStoreUnavailable):
        await call(s3_store(seaweedfs, secret_key="not-the-secret-" + "y" * 24).put, written_id, "image", written)
    assert await call(good.exists, written_id, "image") is False


async def test_a_server_that_does_not_answer_is_unavailable_within_the_timeout():
    store = S3Store(f"http://127.0.0.1:{free_port()}", "wangge-media", "key", "secret-secret-secret", timeout=2)
    loop = asyncio.get_running_loop()
    started = loop.time()
    for action, args in ((store.get, (new_id()[0], "image")), (store.exists, (new_id()[0], "image")),
                         (store.put, (new_id()[0], "image", b"x"))):
        with pytest.raises(MediaStoreUnavailable):
            await call(action, *args)
    assert loop.time() - started < 30


def test_the_settings_choose_the_store(make_settings, seaweedfs):
    assert isinstance(store_from_settings(make_settings()), FolderStore)  # the default
    chosen = store_from_settings(make_settings(**seaweedfs.settings()))
    assert isinstance(chosen, S3Store) and chosen.bucket == seaweedfs.bucket


# ---- through the services' own doors, over real HTTP -----------------------------------------------------------


@asynccontextmanager
async def served(service: Service) -> AsyncIterator[str]:
    """The service's app on a loopback port (uvicorn), its base URL for as long as the block runs."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(service.app, host="127.0.0.1", port=port, log_level="warning",
                                           access_log=False, lifespan="off"))
    task = asyncio.create_task(server.serve())
    try:
        for _ in range(200):
            if server.started:
                break
            if task.done():
                task.result()
            await asyncio.sleep(0.05)
        else:
            raise TimeoutError(f"uvicorn did not start on port {port}")
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 15)


@asynccontextmanager
async def running(*services: Service) -> AsyncIterator[list[str]]:
    """Each service started (runtime: Kafka, PostgreSQL) and served over HTTP; their base URLs."""
    async with AsyncExitStack() as stack:
        urls = []
        for service in services:
            await asyncio.wait_for(service.runtime.start(), 60)
            stack.push_async_callback(lambda s=service: asyncio.wait_for(s.runtime.stop(), 30))
            await service.runtime.wait_until_consuming(60)
            urls.append(await stack.enter_async_context(served(service)))
        yield urls


async def upload(url: str, token: str, data: bytes) -> httpx.Response:
    async with httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=20) as http:
        return await asyncio.wait_for(http.post("/api/v1/media", files={"file": ("photo.jpg", data, "image/jpeg")}),
                                      30)


async def fetch(url: str, token: str, path: str) -> httpx.Response:
    async with httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=20) as http:
        return await asyncio.wait_for(http.get(path), 30)


async def test_a_photo_uploaded_through_one_intake_instance_is_served_by_another_and_by_supervision(
        isolated, seaweedfs):
    settings = isolated.model_copy(update=seaweedfs.settings())
    # Two instances of intake (the same schema, topics and consumer groups) and supervision, each with a folder of
    # its own (isolated's media_dir): only the bucket is shared.
    first, second = build_intake(settings, manage_runtime=False), build_intake(settings, manage_runtime=False)
    supervision = build_supervision(settings, manage_runtime=False)
    async with running(first, second, supervision) as (first_url, second_url, supervision_url):
        await grant(settings, first, supervision, token=UPLOADER, name="网格员001终端", role="terminal",
                    worker_id="W001", device_id="SZT-0001")
        await grant(settings, first, supervision, token=OPERATOR, name="值班员", role="operator")

        answer = await upload(first_url, UPLOADER, phone_jpeg(400, 200))
        assert answer.status_code == 201, answer.text
        stored = answer.json()
        media_id = stored["id"]
        # Answered only once stored: the bucket holds the image and its thumbnail now.
        bucket = s3_store(seaweedfs)
        assert await call(bucket.exists, media_id, "image") and await call(bucket.exists, media_id, "thumbnail")

        image = await fetch(second_url, UPLOADER, stored["url"])  # the other instance: its uploader sees it
        assert image.status_code == 200, image.text
        assert hashlib.sha256(image.content).hexdigest() == media_id
        assert image.headers["content-type"] == "image/jpeg" and image.headers["etag"] == f'"{media_id}"'
        thumbnail = await fetch(second_url, UPLOADER, stored["thumbnail_url"])
        assert thumbnail.status_code == 200 and thumbnail.content == await call(bucket.get, media_id, "thumbnail")
        # Supervision (an operator may see any stored photo) reads the same bucket.
        seen = await fetch(supervision_url, OPERATOR, stored["url"])
        assert seen.status_code == 200 and seen.content == image.content

        # The same photo through the second instance: the same id, stored once (the bucket answered "there").
        again = await upload(second_url, UPLOADER, phone_jpeg(400, 200))
        assert again.status_code == 201 and again.json()["id"] == media_id
        assert await first.runtime.pool.fetchval("SELECT count(*) FROM media_uploads WHERE media_id = $1",
                                                 media_id) == 2


async def test_a_store_that_does_not_answer_is_a_503_at_the_doors_and_nothing_is_recorded(isolated):
    away = {"media_s3_endpoint": f"http://127.0.0.1:{free_port()}", "media_s3_access_key": "wangge",
            "media_s3_secret_key": "a-secret-of-the-store-away", "media_s3_timeout_seconds": 2.0}
    settings = isolated.model_copy(update=away)
    intake, supervision = build_intake(settings, manage_runtime=False), build_supervision(settings,
                                                                                         manage_runtime=False)
    async with running(intake, supervision) as (intake_url, supervision_url):
        await grant(settings, intake, supervision, token=UPLOADER, name="网格员001终端", role="terminal",
                    worker_id="W001", device_id="SZT-0001")
        await grant(settings, intake, supervision, token=OPERATOR, name="值班员", role="operator")
        answer = await upload(intake_url, UPLOADER, phone_jpeg(400, 200))
        assert answer.status_code == 503, answer.text
        assert "照片存储暂时不可用" in answer.json()["detail"] and "retry" in answer.json()["detail"]
        assert await intake.runtime.pool.fetchval("SELECT count(*) FROM media") == 0  # no record of an unstored photo
        some_id = new_id()[0]
        for url in (intake_url, supervision_url):  # an operator may see any photo: the store is asked, and is away
            served_photo = await fetch(url, OPERATOR, f"/media/{some_id}")
            assert served_photo.status_code == 503, served_photo.text
