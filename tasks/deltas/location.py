"""Where a delta lies: the value of a run's ``{role}_delta_prefix``, resolved.

* ``s3://bucket/key/prefix/`` names bucket and key prefix;
* ``key/prefix/`` is a bare key prefix in the bucket ``CHROMASYNC_DELTA_BUCKET``;
* either form ending in ``.tar.gz`` names the tarball object itself.

Under a prefix the delta is ``delta.tar.gz`` (the Chroma directory tarred, at
the archive's root or inside one folder) if that object exists, else the
Chroma directory's files themselves (``prefix/chroma.sqlite3``,
``prefix/<segment uuid>/...``). A prefix without a trailing ``/`` gets one,
so ``runs/1`` never picks up ``runs/10/``.
"""

from __future__ import annotations

from dataclasses import dataclass

from tasks.config import DELTA_BUCKET_ENV
from tasks.deltas.errors import InvalidDelta

#: Object looked for under a delta prefix before falling back to the directory form.
DELTA_TARBALL = "delta.tar.gz"
#: Ending of a key that names the tarball itself rather than a prefix.
TARBALL_SUFFIX = ".tar.gz"


@dataclass(frozen=True)
class DeltaLocation:
    """A delta in S3: a key prefix (ends with ``/``) or one ``.tar.gz`` object."""

    bucket: str
    key: str

    @property
    def is_tarball(self) -> bool:
        return self.key.endswith(TARBALL_SUFFIX)

    @property
    def tarball_key(self) -> str:
        """The tarball's key: the key itself, or ``delta.tar.gz`` under the prefix."""
        return self.key if self.is_tarball else self.key + DELTA_TARBALL

    def url(self, key: str | None = None) -> str:
        """``s3://bucket/key`` of the location, or of another key in its bucket."""
        return f"s3://{self.bucket}/{self.key if key is None else key}"

    def __str__(self) -> str:
        return self.url()


def parse_location(raw: str, default_bucket: str | None) -> DeltaLocation:
    """Resolve a run's ``{role}_delta_prefix`` (see the module docstring for the forms)."""
    text = raw.strip()
    if text.startswith("s3://"):
        bucket, _, key = text[len("s3://") :].partition("/")
    elif "://" in text:
        raise InvalidDelta(f"delta prefix {raw!r}: only s3:// locations are supported")
    elif default_bucket is None:
        raise InvalidDelta(
            f"delta prefix {raw!r} names no bucket: use s3://bucket/key/ or set {DELTA_BUCKET_ENV}"
        )
    else:
        bucket, key = default_bucket, text
    key = key.lstrip("/")
    if not bucket or not key:
        raise InvalidDelta(f"delta prefix {raw!r} must name a bucket and a non-empty key prefix")
    if not key.endswith(TARBALL_SUFFIX) and not key.endswith("/"):
        key += "/"
    return DeltaLocation(bucket, key)
