"""Photos in a bucket of an S3-compatible server: the MediaStore every instance shares (shared/media.py).

The object keys are the ids, `<id>` for the image and `<id>.thumbnail` for its thumbnail: content-addressed, so a
key always holds the same bytes and a put needs no coordination between instances (two instances storing the same
photo at once store the same bytes). boto3 does the signing (SigV4) and the retries; this module decides what an
answer means:
- a missing key is None / False (404 from the server), never an error;
- anything else the server or the network does (refused credentials, no bucket, a timeout, a connection refused)
  is `MediaStoreUnavailable`, which the HTTP doors answer 503: an upload is answered only after PutObject
  succeeded (a store acknowledges a PUT once the object is stored: AWS S3 durably; the local SeaweedFS fsyncs its
  buckets' writes, deploy/local/seaweedfs.sh), so a 503 means "not stored, send it again".

    python -m shared.media_s3 ensure-bucket   create WANGGE_MEDIA_S3_BUCKET if the server has none (./dev, tests)
"""
from __future__ import annotations

import base64
import hashlib
import sys
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from shared.media import MediaStoreUnavailable, Variant, stored_name

# The server's answers that mean "no such object" (HEAD has no body, so only its status says it).
_MISSING = {"404", "NoSuchKey", "NotFound"}


def _code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", "")) or str(
        error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", ""))


class S3Store:
    """A MediaStore in one bucket of an S3-compatible server (AWS S3, SeaweedFS, Ceph RGW, …)."""

    def __init__(self, endpoint: str, bucket: str, access_key: str, secret_key: str, *, region: str = "us-east-1",
                 timeout: float = 10.0):
        self.endpoint = endpoint
        self.bucket = bucket
        self._client: Any = boto3.session.Session().client(
            "s3", endpoint_url=endpoint, region_name=region, aws_access_key_id=access_key,
            aws_secret_access_key=secret_key,
            config=Config(
                signature_version="s3v4",
                # Path-style (http://host/bucket/key): a bucket needs no DNS name of its own on a private server.
                s3={"addressing_style": "path"},
                connect_timeout=min(timeout, 5.0), read_timeout=timeout,
                # A few quick tries (a connection reset, a 5xx), then the caller answers 503: the uploader retries.
                retries={"max_attempts": 3, "mode": "standard"},
                # Calls come from asyncio.to_thread's workers: one pooled connection each, none waiting for another.
                max_pool_connections=32,
                # The flexible checksums boto3 adds by default are not understood by every S3-compatible server;
                # the bytes are protected by Content-MD5 instead (put), which every one of them checks.
                request_checksum_calculation="when_required", response_checksum_validation="when_required"))

    @classmethod
    def from_settings(cls, settings: Any) -> S3Store:
        return cls(settings.media_s3_endpoint, settings.media_s3_bucket, settings.media_s3_access_key,
                   settings.media_s3_secret_key, region=settings.media_s3_region,
                   timeout=settings.media_s3_timeout_seconds)

    def _unavailable(self, doing: str, error: Exception) -> MediaStoreUnavailable:
        if isinstance(error, ClientError):
            said = f"{_code(error)}: {error.response.get('Error', {}).get('Message', '')}".rstrip(": ")
        else:
            said = f"{type(error).__name__}: {error}"
        return MediaStoreUnavailable(f"the photo store {self.endpoint} (bucket {self.bucket}) did not {doing}: "
                                     f"{said[:300]}")

    def put(self, media_id: str, variant: Variant, data: bytes) -> bool:
        key = stored_name(media_id, variant)
        if self.exists(media_id, variant):
            return False
        try:
            # Content-MD5: the server refuses the object if a byte changed on the way (BadDigest), so what is
            # stored is what was sent. PutObject answers only once the object is stored.
            self._client.put_object(Bucket=self.bucket, Key=key, Body=data, ContentType="image/jpeg",
                                    ContentMD5=base64.b64encode(hashlib.md5(data).digest()).decode())
        except (ClientError, BotoCoreError) as error:
            raise self._unavailable("store the photo", error) from error
        return True

    def get(self, media_id: str, variant: Variant) -> bytes | None:
        key = stored_name(media_id, variant)
        try:
            answer = self._client.get_object(Bucket=self.bucket, Key=key)
            return bytes(answer["Body"].read())
        except ClientError as error:
            if _code(error) in _MISSING:
                return None
            raise self._unavailable("read the photo", error) from error
        except BotoCoreError as error:
            raise self._unavailable("read the photo", error) from error

    def exists(self, media_id: str, variant: Variant = "image") -> bool:
        key = stored_name(media_id, variant)
        try:
            self._client.head_object(Bucket=self.bucket, Key=key)
            return True
        except ClientError as error:
            if _code(error) in _MISSING:
                return False
            raise self._unavailable("answer whether it holds the photo", error) from error
        except BotoCoreError as error:
            raise self._unavailable("answer whether it holds the photo", error) from error

    def ensure_bucket(self) -> bool:
        """Create the bucket if the server has none by that name; True when it was created."""
        try:
            self._client.head_bucket(Bucket=self.bucket)
            return False
        except ClientError as error:
            if _code(error) not in _MISSING | {"NoSuchBucket"}:
                raise self._unavailable("answer whether the bucket exists", error) from error
        except BotoCoreError as error:
            raise self._unavailable("answer whether the bucket exists", error) from error
        try:
            self._client.create_bucket(Bucket=self.bucket)
        except ClientError as error:
            if _code(error) not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                raise self._unavailable("create the bucket", error) from error
            return False
        except BotoCoreError as error:
            raise self._unavailable("create the bucket", error) from error
        return True


def main(argv: list[str]) -> int:
    from shared.settings import Settings

    if argv != ["ensure-bucket"]:
        print(__doc__.rsplit("\n\n", 1)[-1], file=sys.stderr)
        return 2
    settings = Settings()
    if not settings.media_s3_endpoint:
        print("WANGGE_MEDIA_S3_ENDPOINT is not set: photos are kept in the folder store", file=sys.stderr)
        return 2
    store = S3Store.from_settings(settings)
    try:
        created = store.ensure_bucket()
    except MediaStoreUnavailable as error:
        print(error, file=sys.stderr)
        return 1
    print(f"bucket {settings.media_s3_bucket} {'created' if created else 'already there'} on "
          f"{settings.media_s3_endpoint}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
