"""Snapshots inside the worker: the periodic publish task and the restore before consuming.

* ``chromasync.publish_snapshot(collection)`` is sent by Celery beat every
  ``CHROMASYNC_SNAPSHOT_INTERVAL`` seconds (``celeryconfig.snapshot_beat_schedule``)
  to the collection's *own* queue. The worker of that queue runs one task at a
  time, so the snapshot waits for the batch before it, and it takes the lease
  like any batch. A failure is logged and not retried: the next tick is the retry.
* With ``CHROMASYNC_RESTORE_ON_START`` the worker's main process restores the
  promoted snapshot into each consumed collection's directory that is empty, on
  ``worker_init``: after the queues are chosen, before the pool forks and before
  the consumer starts, so no task runs on an empty collection, and no timeout
  applies (``worker_process_init`` has a 4 s one). It uses no chromadb there,
  because the pool forks afterwards. A failed restore stops the worker.
  The worker then catches up from its queue.
"""

from __future__ import annotations

import logging
from typing import Any

from celery.signals import worker_init

from chromasync.core.config import UnknownCollection
from chromasync.core.contract import SNAPSHOT_TASK_NAME
from tasks.app import app, consumed_collections
from tasks.config import WorkerSettings
from tasks.runtime import get_runtime
from tasks.snapshots.errors import SnapshotsUnsupported
from tasks.snapshots.publish import SnapshotPublisher, check_supported
from tasks.snapshots.restore import restore_if_empty
from tasks.snapshots.store import SnapshotStore

log = logging.getLogger(__name__)

_store: SnapshotStore | None = None


def _snapshot_store(settings: WorkerSettings) -> SnapshotStore:
    """One store (one S3 client) per worker process, made on first use."""
    global _store
    if _store is None:
        _store = SnapshotStore.from_settings(settings)
    return _store


@app.task(name=SNAPSHOT_TASK_NAME, ignore_result=True)
def publish_snapshot(collection: str) -> dict[str, Any]:
    """Publish and promote one snapshot of ``collection`` (see :mod:`tasks.snapshots.publish`)."""
    runtime = get_runtime()
    settings = runtime.settings
    try:
        runtime.settings.shared.role_of(collection)
        check_supported(settings)
    except (UnknownCollection, SnapshotsUnsupported) as exc:
        log.error("snapshot of %s refused: %s", collection, exc)
        return {"status": "refused", "error": str(exc)}
    publisher = SnapshotPublisher(
        settings, runtime.lock_backend, runtime.target, _snapshot_store(settings)
    )
    try:
        result = publisher.publish(collection)
    except Exception as exc:  # noqa: BLE001 - logged; the next beat tick tries again
        log.warning(
            "snapshot of %s not published (the next tick tries again): %s: %s",
            collection,
            type(exc).__name__,
            exc,
        )
        return {"status": "failed", "error": f"{type(exc).__name__}: {exc}"}
    return {
        "status": "published",
        "collection": collection,
        "version": result.version,
        "count": result.manifest.count,
        "size": result.manifest.size,
        "lock_hold": round(result.lock_hold, 3),
        "pruned": result.pruned,
    }


@worker_init.connect
def restore_before_consuming(sender: Any = None, **_: Any) -> None:
    """``CHROMASYNC_RESTORE_ON_START``: fill empty collection directories from snapshots."""
    settings = WorkerSettings.from_env()
    if not settings.restore_on_start:
        return
    for collection in consumed_collections(sender, settings.shared.collections):
        try:
            restored = restore_if_empty(settings, collection)
        except Exception as exc:
            log.critical("restore of %s before consuming failed: %s", collection, exc)
            # SystemExit passes through Celery's signal dispatch (it catches Exception only).
            raise SystemExit(
                f"chromasync: restore of {collection!r} before consuming failed: "
                f"{type(exc).__name__}: {exc}"
            ) from exc
        if restored is not None:
            log.info(
                "restored %s snapshot %s (%d embeddings) before consuming",
                collection,
                restored.version,
                restored.count,
            )
