"""Snapshots of embedded Chroma collections in S3: publish, list, restore, retention.

See ``docs/snapshots.md``. The Celery side (periodic task, restore before
consuming) is :mod:`tasks.snapshots.task`, imported by the worker's app only.
"""

from tasks.snapshots.errors import (
    CorruptSnapshot,
    DirectoryNotEmpty,
    NoSnapshot,
    PromotionRefused,
    SnapshotError,
    SnapshotNotFound,
    SnapshotStoreUnavailable,
    SnapshotsUnsupported,
    UploadFailed,
)
from tasks.snapshots.layout import Manifest, Pointer, parse_version, version_id
from tasks.snapshots.publish import (
    PublishHooks,
    PublishResult,
    SnapshotPublisher,
    check_supported,
)
from tasks.snapshots.restore import RestoreResult, is_empty, restore_if_empty, restore_snapshot
from tasks.snapshots.retention import prune
from tasks.snapshots.store import SnapshotStore, StoredVersion

__all__ = [
    "CorruptSnapshot",
    "DirectoryNotEmpty",
    "Manifest",
    "NoSnapshot",
    "Pointer",
    "PromotionRefused",
    "PublishHooks",
    "PublishResult",
    "RestoreResult",
    "SnapshotError",
    "SnapshotNotFound",
    "SnapshotPublisher",
    "SnapshotStore",
    "SnapshotStoreUnavailable",
    "SnapshotsUnsupported",
    "StoredVersion",
    "UploadFailed",
    "check_supported",
    "is_empty",
    "parse_version",
    "prune",
    "restore_if_empty",
    "restore_snapshot",
    "version_id",
]
