"""What can go wrong with a snapshot, as exceptions an operator can act on.

Every message names the collection, the version and where the snapshot lives,
so the CLI can print it as is.
"""

from __future__ import annotations

from chromasync.core.config import ConfigError


class SnapshotError(RuntimeError):
    """Base of every snapshot failure that is not a configuration error."""


class SnapshotsUnsupported(ConfigError):
    """The configured Chroma target is a server: its own persistence/backup applies."""


class NoSnapshot(SnapshotError):
    """Nothing was ever promoted for the collection (no bucket or no ``latest`` pointer)."""


class SnapshotNotFound(SnapshotError):
    """A named version (or its manifest) is not in the bucket."""


class CorruptSnapshot(SnapshotError):
    """An archive or manifest does not match what was published; it is refused."""


class UploadFailed(SnapshotError):
    """The upload, or its verification, failed; the pointer was not touched."""


class PromotionRefused(SnapshotError):
    """The lease was lost or another publisher moved the pointer; nothing was promoted."""


class DirectoryNotEmpty(SnapshotError):
    """A restore was asked to write into a directory that already holds data."""


class SnapshotStoreUnavailable(ConnectionError):
    """S3 could not be reached (a ``ConnectionError``, so callers treat it as transient)."""
