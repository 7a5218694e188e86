"""Where a snapshot lives in the bucket, how versions are named, and the two JSON documents.

Layout, per collection::

    {collection}/snapshot/{version}/snapshot.tar.gz   the Chroma directory, tarred and gzipped
    {collection}/snapshot/{version}/manifest.json     sha256, size, count... (written last)
    {collection}/snapshot/latest                       the pointer: which version readers take

Why this shape:

* A version is never overwritten: its id is unique (time + fencing number), so a
  reader that resolved the pointer downloads exactly what was verified.
* ``manifest.json`` is written only after the archive is uploaded and checked,
  so a version without one is an upload that never finished.
* ``latest`` is the only object that changes. Readers go through it, so they
  see either the previous version or the new one, never a half-written one.
* The version id sorts by time (UTC, microseconds) and carries the fencing
  number of the lease it was taken under, so ``list`` shows which lease
  produced each version.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from tasks.snapshots.errors import CorruptSnapshot

#: Folder below the collection that holds its snapshots.
SNAPSHOT_FOLDER = "snapshot"
#: The archive of one version.
ARCHIVE_NAME = "snapshot.tar.gz"
#: The manifest of one version; its presence marks the version complete.
MANIFEST_NAME = "manifest.json"
#: The pointer object below ``{collection}/snapshot/``.
POINTER_NAME = "latest"
#: Version of the manifest and pointer documents; bumped on incompatible changes.
FORMAT = 1
#: ``20260131T120000123456Z-f000000000042``: UTC time to the microsecond, then the fence.
_VERSION = re.compile(r"(\d{8}T\d{12}Z)-f(\d{12,})")
_TIME_FORMAT = "%Y%m%dT%H%M%S%fZ"


def version_id(at: datetime, fence: int) -> str:
    """The id of a version taken at ``at`` under the lease with fencing number ``fence``."""
    return f"{at.astimezone(UTC):{_TIME_FORMAT}}-f{fence:012d}"


def parse_version(version: str) -> tuple[datetime, int]:
    """(time, fence) of a version id; ``ValueError`` naming the expected form otherwise."""
    match = _VERSION.fullmatch(version)
    if match is None:
        raise ValueError(
            f"{version!r} is not a snapshot version id (expected e.g. 20260131T120000123456Z-f"
            "000000000042; `chromasync snapshot list` shows them)"
        )
    at = datetime.strptime(match.group(1), _TIME_FORMAT).replace(tzinfo=UTC)
    return at, int(match.group(2))


def is_version(name: str) -> bool:
    return _VERSION.fullmatch(name) is not None


def snapshots_prefix(collection: str) -> str:
    return f"{collection}/{SNAPSHOT_FOLDER}/"


def version_prefix(collection: str, version: str) -> str:
    return f"{snapshots_prefix(collection)}{version}/"


def archive_key(collection: str, version: str) -> str:
    return version_prefix(collection, version) + ARCHIVE_NAME


def manifest_key(collection: str, version: str) -> str:
    return version_prefix(collection, version) + MANIFEST_NAME


def pointer_key(collection: str) -> str:
    return snapshots_prefix(collection) + POINTER_NAME


def _load(raw: bytes, what: str) -> dict[str, Any]:
    """A manifest's or pointer's JSON object, of the format this chromasync reads."""
    try:
        data = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CorruptSnapshot(f"{what} is not valid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise CorruptSnapshot(f"{what} is not a JSON object")
    if data.get("format") != FORMAT:
        raise CorruptSnapshot(
            f"{what} has format {data.get('format')!r}; this chromasync reads format {FORMAT}"
        )
    return data


def _dump(document: Manifest | Pointer) -> bytes:
    return json.dumps(asdict(document), indent=2, sort_keys=True).encode()


def _field(data: dict[str, Any], name: str, kind: type, what: str) -> Any:
    value = data.get(name)
    # bool is an int in Python; a manifest with "size": true is broken, not 1 byte.
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise CorruptSnapshot(f"{what} has no valid {name!r} ({kind.__name__} expected)")
    return value


@dataclass(frozen=True)
class Manifest:
    """What one version holds; readers check the archive against it."""

    collection: str
    version: str
    #: ISO 8601 UTC time of the copy (under the lease).
    created_at: str
    #: Fencing number of the lease the copy was taken under.
    fence: int
    #: Hex sha256 and byte size of ``snapshot.tar.gz``.
    sha256: str
    size: int
    #: Embeddings in the collection at that instant.
    count: int
    #: The chromadb version that wrote the directory.
    chromadb_version: str
    format: int = FORMAT

    def to_json(self) -> bytes:
        return _dump(self)

    @classmethod
    def from_json(cls, raw: bytes, what: str) -> Manifest:
        data = _load(raw, what)
        return cls(
            collection=_field(data, "collection", str, what),
            version=_field(data, "version", str, what),
            created_at=_field(data, "created_at", str, what),
            fence=_field(data, "fence", int, what),
            sha256=_field(data, "sha256", str, what),
            size=_field(data, "size", int, what),
            count=_field(data, "count", int, what),
            chromadb_version=_field(data, "chromadb_version", str, what),
        )


@dataclass(frozen=True)
class Pointer:
    """The content of ``{collection}/snapshot/latest``: the version readers take."""

    version: str
    sha256: str
    size: int
    fence: int
    #: ISO 8601 UTC time of the promotion.
    promoted_at: str
    format: int = FORMAT

    def to_json(self) -> bytes:
        return _dump(self)

    @classmethod
    def from_json(cls, raw: bytes, what: str) -> Pointer:
        data = _load(raw, what)
        return cls(
            version=_field(data, "version", str, what),
            sha256=_field(data, "sha256", str, what),
            size=_field(data, "size", int, what),
            fence=_field(data, "fence", int, what),
            promoted_at=_field(data, "promoted_at", str, what),
        )
