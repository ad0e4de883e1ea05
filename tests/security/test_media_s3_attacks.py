"""The S3 photo store's boundary: SeaweedFS (deploy/local/seaweedfs.sh) lets no one read or write a photo without
wangge's key pair (the photos are personal data: a case's scene, a resident's street), and the production profile
refuses to start with a store and no secret."""
from __future__ import annotations

import asyncio
import hashlib
import os

import httpx
import pytest

from shared.media_s3 import S3Store
from shared.settings import Settings
from tests.s3server import S3Server, seaweedfs  # noqa: F401  (the session fixture)

pytestmark = pytest.mark.timeout(240)  # the first test of a run waits for SeaweedFS to start


async def test_without_a_signature_nobody_reads_lists_or_writes_a_photo(seaweedfs: S3Server):
    data = os.urandom(32)
    media_id = hashlib.sha256(data).hexdigest()
    store = S3Store(seaweedfs.endpoint, seaweedfs.bucket, seaweedfs.access_key, seaweedfs.secret_key)
    await asyncio.wait_for(asyncio.to_thread(store.put, media_id, "image", data), 30)
    async with httpx.AsyncClient(base_url=seaweedfs.endpoint, timeout=10) as anonymous:
        read = await asyncio.wait_for(anonymous.get(f"/{seaweedfs.bucket}/{media_id}"), 15)
        listed = await asyncio.wait_for(anonymous.get(f"/{seaweedfs.bucket}"), 15)
        buckets = await asyncio.wait_for(anonymous.get("/"), 15)
        written = await asyncio.wait_for(anonymous.put(f"/{seaweedfs.bucket}/{'0' * 64}", content=b"forged"), 15)
        # A forged signature with the right access key but a made-up secret.
        forged = await asyncio.wait_for(anonymous.get(f"/{seaweedfs.bucket}/{media_id}", headers={
            "Authorization": f"AWS4-HMAC-SHA256 Credential={seaweedfs.access_key}/20261206/us-east-1/s3/aws4_request, "
                             "SignedHeaders=host;x-amz-date, Signature=" + "0" * 64,
            "x-amz-date": "20261206T000000Z", "x-amz-content-sha256": "UNSIGNED-PAYLOAD"}), 15)
    for answer in (read, listed, buckets, written, forged):
        assert answer.status_code == 403, (answer.request.method, answer.request.url, answer.status_code)
        assert data not in answer.content
    assert not await asyncio.wait_for(asyncio.to_thread(store.exists, "0" * 64, "image"), 30)


def test_the_production_profile_refuses_a_photo_store_without_its_key_pair():
    base = dict(profile="production", media_s3_endpoint="https://s3.internal:8333")
    for service in ("intake", "supervision"):
        for keys in ({}, {"media_s3_access_key": "wangge"}, {"media_s3_access_key": "wangge", "media_s3_secret_key": "short"},
                     {"media_s3_secret_key": "s" * 40}):
            problems = Settings(**base, **keys).production_problems(service)
            assert any("WANGGE_MEDIA_S3_SECRET_KEY" in p for p in problems), (service, keys)
        ready = Settings(**base, media_s3_access_key="wangge", media_s3_secret_key="s" * 40)
        assert not any("WANGGE_MEDIA_S3" in p for p in ready.production_problems(service))
    # The folder store (no endpoint) needs no key pair.
    assert not any("WANGGE_MEDIA_S3" in p for p in Settings(profile="production").production_problems("intake"))
