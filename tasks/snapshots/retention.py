"""Retention: which snapshot versions stay in the bucket, and deleting the others.

It runs only after a promotion, and never touches the promoted version or
anything newer (a publish may be in flight), so a reader that resolved the
pointer always finds the version it names.
"""

from __future__ import annotations

import logging

from tasks.snapshots.store import SnapshotStore

log = logging.getLogger(__name__)


def prune(store: SnapshotStore, collection: str, keep: int) -> list[str]:
    """Delete versions beyond the newest ``keep`` complete ones; returns those deleted.

    Only versions not newer than the promoted one are considered (a newer one
    may be a publish in flight); the promoted version is always kept; leftovers
    of failed publishes older than it are deleted too.
    """
    if keep < 1:
        raise ValueError(f"keep must be at least 1, got {keep}")
    pointer, _etag = store.read_pointer(collection)
    if pointer is None:
        return []
    settled = [v for v in store.versions(collection) if v.version <= pointer.version]
    complete = [v.version for v in settled if v.complete]
    kept = set(complete[-keep:]) | {pointer.version}
    doomed = [v.version for v in settled if v.version not in kept]
    for version in doomed:
        store.delete_version(collection, version)
        log.info("deleted snapshot %s of %s (keeping the newest %d)", version, collection, keep)
    return doomed
