"""The worker's hook (``tasks.compaction``): record each batch that applied changes.

Best effort (:mod:`tasks.besteffort`): a failure is logged once, then no
attempt for a while, and never fails the task. One store per lock URL is
kept for the life of the process.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from chromasync.core.contract import ChangeBatch
from chromasync.core.urls import redact_url
from tasks.besteffort import BestEffort
from tasks.progress.backend import AppliedBatch, ProgressStore
from tasks.progress.factory import progress_store_from_url

if TYPE_CHECKING:
    from tasks.config import WorkerSettings
    from tasks.runtime import BatchOutcome

_stores: dict[str, ProgressStore] = {}
_stores_lock = threading.Lock()
_best_effort = BestEffort("last applied batch")


def _store_for(settings: WorkerSettings) -> ProgressStore:
    with _stores_lock:
        store = _stores.get(settings.lock_url)
        if store is None:
            store = progress_store_from_url(settings.lock_url, settings.shared.aws)
            _stores[settings.lock_url] = store
        return store


def _where(settings: WorkerSettings) -> str:
    store = _stores.get(settings.lock_url)
    return store.where if store is not None else f"lock store {redact_url(settings.lock_url)}"


def batch_applied(settings: WorkerSettings, batch: ChangeBatch, outcome: BatchOutcome) -> None:
    """Record a batch that applied changes; best effort, never raises."""
    if outcome.applied <= 0:
        return
    _best_effort.write(
        lambda: _where(settings),
        lambda: _store_for(settings).record(AppliedBatch.from_outcome(batch, outcome)),
    )
