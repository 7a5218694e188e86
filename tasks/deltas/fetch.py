"""Downloading a delta from S3 into a temporary folder.

Nothing under the prefix yet, or an object gone between listing and download,
raises :class:`~tasks.errors.DeltaNotReady`: the upload may still be on its
way, so the run waits and is retried. Every object key is checked before any
download, so a bad listing writes nothing.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

from tasks.deltas.errors import InvalidDelta
from tasks.deltas.extract import chroma_root, extract_tarball, safe_destination
from tasks.deltas.location import DELTA_TARBALL, DeltaLocation
from tasks.errors import DeltaNotReady, aws_error_code

#: S3 error codes meaning "that object is not there" (not uploaded yet, or replaced).
_NOT_FOUND_CODES = frozenset({"404", "NoSuchKey", "NotFound"})


def _list(s3: Any, location: DeltaLocation) -> list[str]:
    keys: list[str] = []
    paginator = s3.get_paginator("list_objects_v2")
    try:
        for page in paginator.paginate(Bucket=location.bucket, Prefix=location.key):
            keys.extend(obj["Key"] for obj in page.get("Contents", []))
    except ClientError as exc:
        if aws_error_code(exc) == "NoSuchBucket":
            raise InvalidDelta(f"bucket of {location} does not exist: {exc}") from exc
        raise
    return keys


def _download(s3: Any, location: DeltaLocation, key: str, path: Path) -> None:
    try:
        s3.download_file(location.bucket, key, str(path))
    except ClientError as exc:
        if aws_error_code(exc) in _NOT_FOUND_CODES:
            raise DeltaNotReady(f"{location.url(key)} is not there (yet): {exc}") from exc
        raise


def fetch_delta(s3: Any, location: DeltaLocation, workdir: Path) -> Path:
    """Download the delta into ``workdir``; return its Chroma directory."""
    directory = workdir / "delta"
    directory.mkdir()
    objects = [] if location.is_tarball else _list(s3, location)
    if location.is_tarball or location.tarball_key in objects:
        tarball = workdir / DELTA_TARBALL
        _download(s3, location, location.tarball_key, tarball)
        source = location.url(location.tarball_key)
        extract_tarball(tarball, directory, source)
        return chroma_root(directory, source, uploading=False)
    if not objects:
        raise DeltaNotReady(f"no delta under {location} yet (neither {DELTA_TARBALL} nor files)")
    plan = [
        (key, safe_destination(directory, key[len(location.key) :], f"object {location.url(key)}"))
        for key in objects
        if not key.endswith("/")  # "folder" marker objects hold nothing
    ]
    for key, path in plan:
        path.parent.mkdir(parents=True, exist_ok=True)
        _download(s3, location, key, path)
    return chroma_root(directory, str(location), uploading=True)
