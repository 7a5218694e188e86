"""The snapshot bucket in S3: versions, manifests and the ``latest`` pointer.

Why it works the way it does:

* The archive goes up with its sha256 (``ChecksumSHA256``): real S3 rejects a
  body that does not match. It is then verified with a HEAD (size, the sha256
  we recorded in the object's metadata, and S3's own checksum when it reports
  one) before anything refers to it. moto stores the metadata but checks no
  checksum, so locally the size and metadata are what is verified.
* The pointer is written with a conditional PUT (``If-Match`` the ETag read
  just before, or ``If-None-Match: *`` for the first one): if anyone else
  promoted in between, the write fails instead of overwriting theirs.
* Downloads are streamed to disk and hashed on the way, single-threaded (no
  transfer thread pool), so a restore may run in a process that forks later.
* Transport failures become :class:`SnapshotStoreUnavailable` naming the endpoint.
"""

from __future__ import annotations

import base64
import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

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
from tasks.snapshots.archive import CHUNK
from tasks.snapshots.errors import (
    NoSnapshot,
    PromotionRefused,
    SnapshotError,
    SnapshotNotFound,
    SnapshotStoreUnavailable,
    UploadFailed,
)
from tasks.snapshots.layout import (
    ARCHIVE_NAME,
    MANIFEST_NAME,
    Manifest,
    Pointer,
    archive_key,
    is_version,
    manifest_key,
    pointer_key,
    snapshots_prefix,
    version_prefix,
)

if TYPE_CHECKING:
    from tasks.config import WorkerSettings

log = logging.getLogger(__name__)

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
_MISSING = frozenset({"404", "NoSuchKey", "NotFound", "NoSuchBucket"})
#: S3 error codes of a conditional write that lost the race.
_CONFLICT = frozenset({"PreconditionFailed", "412", "ConditionalRequestConflict", "409"})

#: Most keys one DeleteObjects call accepts.
DELETE_BATCH = 1000

_T = TypeVar("_T")


@dataclass
class StoredVersion:
    """The objects of one version as listed (no manifest read)."""

    version: str
    #: Object name (``snapshot.tar.gz``, ``manifest.json``) → size in bytes.
    objects: dict[str, int] = field(default_factory=dict)
    #: When its newest object was written (S3's clock).
    last_modified: datetime | None = None

    @property
    def complete(self) -> bool:
        return ARCHIVE_NAME in self.objects and MANIFEST_NAME in self.objects


class SnapshotStore:
    """Snapshots of every collection in one bucket; one instance per process is enough."""

    def __init__(self, bucket: str, aws: AwsSettings, s3: Any | None = None) -> None:
        """The bucket is made by ``chromasync provision``; it is never created here."""
        self.bucket = bucket
        self.aws = aws
        self._s3 = s3

    @classmethod
    def from_settings(cls, settings: WorkerSettings) -> SnapshotStore:
        return cls(settings.snapshot_bucket, settings.shared.aws)

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

    def _call(self, what: str, call: Callable[[], _T]) -> _T:
        try:
            return call()
        except _UNREACHABLE as exc:
            endpoint = self.aws.endpoint_url or f"AWS S3 ({self.aws.region})"
            raise SnapshotStoreUnavailable(
                f"S3 at {endpoint} is unreachable during {what}: {exc}"
            ) from exc

    # -- bucket -----------------------------------------------------------------------------

    def check_bucket(self) -> None:
        """Fail early, naming the bucket, when it does not exist (or cannot be used)."""
        try:
            self._call("bucket check", lambda: self.s3.head_bucket(Bucket=self.bucket))
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

    # -- one version ------------------------------------------------------------------------

    def upload_archive(
        self, collection: str, version: str, path: Path, sha256: str, size: int
    ) -> None:
        key = archive_key(collection, version)
        checksum = base64.b64encode(bytes.fromhex(sha256)).decode()
        with open(path, "rb") as body:
            self._call(
                f"upload of {self.url(key)}",
                lambda: self.s3.put_object(
                    Bucket=self.bucket,
                    Key=key,
                    Body=body,
                    ContentLength=size,
                    ContentType="application/gzip",
                    ChecksumSHA256=checksum,
                    Metadata={"sha256": sha256},
                ),
            )

    def verify_archive(self, collection: str, version: str, sha256: str, size: int) -> None:
        """:class:`UploadFailed` unless the stored archive is complete and ours."""
        key = archive_key(collection, version)
        where = self.url(key)
        try:
            head = self._call(
                f"check of {where}",
                lambda: self.s3.head_object(Bucket=self.bucket, Key=key, ChecksumMode="ENABLED"),
            )
        except ClientError as exc:
            raise UploadFailed(f"{where} is not there after its upload: {exc}") from exc
        stored = int(head.get("ContentLength", -1))
        if stored != size:
            raise UploadFailed(f"{where} holds {stored} bytes after the upload; {size} were sent")
        recorded = head.get("Metadata", {}).get("sha256")
        if recorded != sha256:
            raise UploadFailed(f"{where} records sha256 {recorded}; the upload had {sha256}")
        checksum = head.get("ChecksumSHA256")
        expected = base64.b64encode(bytes.fromhex(sha256)).decode()
        # A multipart checksum ("...-3") is a checksum of parts, not comparable.
        if checksum and "-" not in checksum and checksum != expected:
            raise UploadFailed(f"S3 reports sha256 {checksum} for {where}; expected {expected}")

    def put_manifest(self, manifest: Manifest) -> None:
        key = manifest_key(manifest.collection, manifest.version)
        self._call(
            f"upload of {self.url(key)}",
            lambda: self.s3.put_object(
                Bucket=self.bucket,
                Key=key,
                Body=manifest.to_json(),
                ContentType="application/json",
            ),
        )

    def _read_object(self, key: str) -> tuple[bytes, str] | None:
        """The object's body and ETag; None when it does not exist."""
        where = self.url(key)
        try:
            response = self._call(
                f"read of {where}", lambda: self.s3.get_object(Bucket=self.bucket, Key=key)
            )
            raw = self._call(f"read of {where}", lambda: response["Body"].read())
        except ClientError as exc:
            if aws_error_code(exc) in _MISSING:
                return None
            raise
        return raw, str(response["ETag"])

    def read_manifest(self, collection: str, version: str) -> Manifest:
        key = manifest_key(collection, version)
        found = self._read_object(key)
        if found is None:
            raise SnapshotNotFound(
                f"version {version} of {collection!r} has no manifest at {self.url(key)}: "
                "no such version, or its upload never finished"
            )
        return Manifest.from_json(found[0], f"manifest {self.url(key)}")

    def download_archive(self, collection: str, version: str, path: Path) -> tuple[str, int]:
        """Stream the archive to ``path``; return the (sha256, size) of what arrived."""
        key = archive_key(collection, version)
        where = self.url(key)
        try:
            response = self._call(
                f"download of {where}", lambda: self.s3.get_object(Bucket=self.bucket, Key=key)
            )
        except ClientError as exc:
            if aws_error_code(exc) in _MISSING:
                raise SnapshotNotFound(f"{where} is not there: {exc}") from exc
            raise
        digest = hashlib.sha256()
        size = 0
        body = response["Body"]

        def stream() -> None:
            nonlocal size
            with open(path, "wb") as out:
                while chunk := body.read(CHUNK):
                    digest.update(chunk)
                    size += len(chunk)
                    out.write(chunk)

        self._call(f"download of {where}", stream)
        return digest.hexdigest(), size

    def delete_version(self, collection: str, version: str) -> int:
        """Delete every object of a version; returns how many were deleted."""
        prefix = version_prefix(collection, version)
        keys = [key for key, _size, _at in self._objects(prefix)]

        for start in range(0, len(keys), DELETE_BATCH):
            objects = [{"Key": k} for k in keys[start : start + DELETE_BATCH]]
            self._call(f"delete of {self.url(prefix)}", partial(self._delete, objects))
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

    # -- listing ----------------------------------------------------------------------------

    def _objects(self, prefix: str) -> list[tuple[str, int, datetime]]:
        """(key, size, last modified) of every object under ``prefix``; [] without a bucket."""
        found: list[tuple[str, int, datetime]] = []

        def collect() -> None:
            paginator = self.s3.get_paginator("list_objects_v2")
            for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix):
                for obj in page.get("Contents", []):
                    found.append((obj["Key"], int(obj["Size"]), obj["LastModified"]))

        try:
            self._call(f"listing of {self.url(prefix)}", collect)
        except ClientError as exc:
            if aws_error_code(exc) == "NoSuchBucket":
                return []
            raise
        return found

    def versions(self, collection: str) -> list[StoredVersion]:
        """Every version of a collection with its objects, oldest first."""
        prefix = snapshots_prefix(collection)
        by_version: dict[str, StoredVersion] = {}
        for key, size, modified in self._objects(prefix):
            version, _, name = key[len(prefix) :].partition("/")
            if not name or not is_version(version):
                continue  # the pointer, or something that is not ours
            stored = by_version.setdefault(version, StoredVersion(version))
            stored.objects[name] = size
            if stored.last_modified is None or modified > stored.last_modified:
                stored.last_modified = modified
        return [by_version[v] for v in sorted(by_version)]

    # -- the pointer ------------------------------------------------------------------------

    def read_pointer(self, collection: str) -> tuple[Pointer | None, str | None]:
        """(pointer, its ETag); (None, None) when nothing was promoted yet."""
        key = pointer_key(collection)
        found = self._read_object(key)
        if found is None:
            return None, None
        raw, etag = found
        return Pointer.from_json(raw, f"pointer {self.url(key)}"), etag

    def latest(self, collection: str) -> Pointer:
        """The promoted pointer; :class:`NoSnapshot` when there is none."""
        pointer, _etag = self.read_pointer(collection)
        if pointer is None:
            raise NoSnapshot(
                f"no snapshot of {collection!r} was ever promoted "
                f"({self.url(pointer_key(collection))} does not exist)"
            )
        return pointer

    def write_pointer(self, collection: str, pointer: Pointer, etag: str | None) -> None:
        """Write the pointer only if it still has ``etag`` (or still does not exist)."""
        key = pointer_key(collection)
        condition = {"IfMatch": etag} if etag else {"IfNoneMatch": "*"}
        try:
            self._call(
                f"promotion via {self.url(key)}",
                lambda: self.s3.put_object(
                    Bucket=self.bucket,
                    Key=key,
                    Body=pointer.to_json(),
                    ContentType="application/json",
                    **condition,
                ),
            )
        except ClientError as exc:
            if aws_error_code(exc) in _CONFLICT:
                raise PromotionRefused(
                    f"{self.url(key)} changed while {pointer.version} was being promoted "
                    "(another publisher promoted first); not overwriting it"
                ) from exc
            raise
