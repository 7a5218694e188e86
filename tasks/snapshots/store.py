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
* Downloads are streamed to disk and hashed on the way.

Plain S3 access (the client, transport failures, listing, deleting) is
:class:`~tasks.snapshots.bucket.SnapshotBucket`.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from botocore.exceptions import ClientError

from tasks.errors import aws_error_code
from tasks.snapshots.archive import CHUNK
from tasks.snapshots.bucket import MISSING_CODES, SnapshotBucket
from tasks.snapshots.errors import NoSnapshot, PromotionRefused, SnapshotNotFound, UploadFailed
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

#: S3 error codes of a conditional write that lost the race.
_CONFLICT = frozenset({"PreconditionFailed", "412", "ConditionalRequestConflict", "409"})


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


class SnapshotStore(SnapshotBucket):
    """Snapshots of every collection in one bucket; one instance per process is enough."""

    @classmethod
    def from_settings(cls, settings: WorkerSettings) -> SnapshotStore:
        return cls(settings.snapshot_bucket, settings.shared.aws)

    # -- one version ------------------------------------------------------------------------

    def upload_archive(
        self, collection: str, version: str, path: Path, sha256: str, size: int
    ) -> None:
        key = archive_key(collection, version)
        checksum = base64.b64encode(bytes.fromhex(sha256)).decode()
        with open(path, "rb") as body:
            self.call(
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
            head = self.call(
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
        self.call(
            f"upload of {self.url(key)}",
            lambda: self.s3.put_object(
                Bucket=self.bucket,
                Key=key,
                Body=manifest.to_json(),
                ContentType="application/json",
            ),
        )

    def read_manifest(self, collection: str, version: str) -> Manifest:
        key = manifest_key(collection, version)
        found = self.read_object(key)
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
            response = self.call(
                f"download of {where}", lambda: self.s3.get_object(Bucket=self.bucket, Key=key)
            )
        except ClientError as exc:
            if aws_error_code(exc) in MISSING_CODES:
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

        self.call(f"download of {where}", stream)
        return digest.hexdigest(), size

    def delete_version(self, collection: str, version: str) -> int:
        """Delete every object of a version; returns how many were deleted."""
        return self.delete_prefix(version_prefix(collection, version))

    # -- listing ----------------------------------------------------------------------------

    def versions(self, collection: str) -> list[StoredVersion]:
        """Every version of a collection with its objects, oldest first."""
        prefix = snapshots_prefix(collection)
        by_version: dict[str, StoredVersion] = {}
        for key, size, modified in self.objects(prefix):
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
        found = self.read_object(key)
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
            self.call(
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
