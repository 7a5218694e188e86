"""Plain S3 access to the snapshot bucket: one client, and transport failures named.

Transport failures (no answer, a dropped connection, a body cut short) become
:class:`~tasks.snapshots.errors.SnapshotStoreUnavailable` naming the endpoint
and the step. Downloads and listings run single-threaded (no transfer thread
pool), so a restore may run in a process that forks later.
:class:`~tasks.snapshots.store.SnapshotStore` adds the snapshot layout on top.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from functools import partial
from typing import Any, TypeVar

from botocore.config import Config
from botocore.exceptions import (
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    HTTPClientError,
    IncompleteReadError,
    ReadTimeoutError,
    ResponseStreamingError,
)
from botocore.exceptions import ConnectionError as BotoConnectionError

from chromasync.core.config import AwsSettings
from chromasync.core.resources import (
    ACCESS_DENIED_CODES,
    MISSING_BUCKET_CODES,
    PROVISION_HINT,
    MissingResource,
    NotPermitted,
    endpoint_of,
    not_permitted,
)
from tasks.errors import aws_error_code
from tasks.snapshots.errors import SnapshotError, SnapshotStoreUnavailable, UploadFailed

#: Timeouts and retries of snapshot S3 calls: a dead endpoint fails within
#: seconds; botocore's standard mode absorbs brief throttling.
S3_CONFIG = Config(
    connect_timeout=5,
    read_timeout=60,
    retries={"mode": "standard", "max_attempts": 3},
)
#: Transport failures: no answer, a dropped connection, a timeout, a body cut short.
_UNREACHABLE = (
    EndpointConnectionError,
    ConnectionClosedError,
    ConnectTimeoutError,
    ReadTimeoutError,
    ResponseStreamingError,
    IncompleteReadError,
    BotoConnectionError,
    HTTPClientError,
)
#: S3 error codes meaning "that object or bucket is not there".
MISSING_CODES = frozenset({"404", "NoSuchKey", "NotFound", "NoSuchBucket"})
#: Most keys one DeleteObjects call accepts.
DELETE_BATCH = 1000

_T = TypeVar("_T")


class SnapshotBucket:
    """One S3 bucket reached through one lazily made client."""

    def __init__(self, bucket: str, aws: AwsSettings, s3: Any | None = None) -> None:
        """The bucket is made by ``chromasync provision``; it is never created here."""
        self.bucket = bucket
        self.aws = aws
        self._s3 = s3

    @property
    def s3(self) -> Any:
        if self._s3 is None:
            import boto3

            self._s3 = boto3.client("s3", config=S3_CONFIG, **self.aws.client_kwargs())
        return self._s3

    def close(self) -> None:
        """Close the S3 client's connections (before a fork, for example)."""
        if self._s3 is not None:
            self._s3.close()
            self._s3 = None

    def url(self, key: str = "") -> str:
        return f"s3://{self.bucket}/{key}"

    def call(self, what: str, call: Callable[[], _T]) -> _T:
        """``call()``, with a transport failure raised as :class:`SnapshotStoreUnavailable`."""
        try:
            return call()
        except _UNREACHABLE as exc:
            endpoint = self.aws.endpoint_url or f"AWS S3 ({self.aws.region})"
            raise SnapshotStoreUnavailable(
                f"S3 at {endpoint} is unreachable during {what}: {exc}"
            ) from exc

    def check_bucket(self) -> None:
        """Fail early, naming the bucket, when it does not exist (or cannot be used)."""
        try:
            self.call("bucket check", lambda: self.s3.head_bucket(Bucket=self.bucket))
        except ClientError as exc:
            if aws_error_code(exc) in MISSING_BUCKET_CODES:
                raise MissingResource(
                    "S3 bucket",
                    self.bucket,
                    endpoint_of(self.s3),
                    hint=f"{PROVISION_HINT}, or set CHROMASYNC_SNAPSHOT_BUCKET to one that exists",
                ) from exc
            denied = not_permitted(exc, f"HeadBucket of {self.bucket!r} (s3:ListBucket)")
            if denied is not None:
                raise denied from exc
            raise UploadFailed(f"cannot use bucket {self.bucket!r}: {exc}") from exc

    def read_object(self, key: str) -> tuple[bytes, str] | None:
        """The object's body and ETag; None when it does not exist."""
        where = self.url(key)
        try:
            response = self.call(
                f"read of {where}", lambda: self.s3.get_object(Bucket=self.bucket, Key=key)
            )
            raw = self.call(f"read of {where}", lambda: response["Body"].read())
        except ClientError as exc:
            if aws_error_code(exc) in MISSING_CODES:
                return None
            raise
        return raw, str(response["ETag"])

    def objects(self, prefix: str) -> list[tuple[str, int, datetime]]:
        """(key, size, last modified) of every object under ``prefix``; [] without a bucket."""
        found: list[tuple[str, int, datetime]] = []

        def collect() -> None:
            paginator = self.s3.get_paginator("list_objects_v2")
            for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix):
                for obj in page.get("Contents", []):
                    found.append((obj["Key"], int(obj["Size"]), obj["LastModified"]))

        try:
            self.call(f"listing of {self.url(prefix)}", collect)
        except ClientError as exc:
            if aws_error_code(exc) == "NoSuchBucket":
                return []
            raise
        return found

    def delete_prefix(self, prefix: str) -> int:
        """Delete every object under ``prefix``; returns how many were deleted."""
        keys = [key for key, _size, _at in self.objects(prefix)]
        for start in range(0, len(keys), DELETE_BATCH):
            objects = [{"Key": k} for k in keys[start : start + DELETE_BATCH]]
            self.call(f"delete of {self.url(prefix)}", partial(self._delete, objects))
        return len(keys)

    def _delete(self, objects: list[dict[str, str]]) -> None:
        """One DeleteObjects call; a key S3 did not delete is an error, never a silent skip.

        DeleteObjects answers 200 even when keys fail (a denied ``s3:DeleteObject``
        among them); the failures are listed in ``Errors``.
        """
        response = self.s3.delete_objects(
            Bucket=self.bucket, Delete={"Objects": objects, "Quiet": True}
        )
        errors = response.get("Errors", [])
        if not errors:
            return
        first = errors[0]
        what = f"deleting {len(errors)} of {len(objects)} objects in {self.url()}"
        if first.get("Code") in ACCESS_DENIED_CODES:
            raise NotPermitted(what + " (s3:DeleteObject)", RuntimeError(first.get("Message")))
        raise SnapshotError(f"{what} failed: {first.get('Key')}: {first.get('Code')} {first}")
