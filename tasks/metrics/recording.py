"""The hooks that count what happens: the worker's (``tasks.compaction``) and the supervisor's.

Each hook gathers its increments in a :class:`~tasks.metrics.writes.Writes`
and sends them in one round trip to this process's store, built on first
use (after the prefork pool forked). No error of ours, not even a bug,
reaches the task: a hook logs it and returns.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from chromasync.core.config import ConfigError
from chromasync.core.contract import ChangeBatch
from tasks.metrics.catalogue import (
    APPLIED,
    BATCH_APPLY,
    DEAD_LETTERED,
    FAILED,
    LAG,
    LOCK_HOLD,
    LOCK_WAIT,
    RECEIVED,
    RESTARTS,
    RETRIED,
    TASK_ERRORS,
    MetricDef,
    change_labels,
)
from tasks.metrics.store import MetricsStore
from tasks.metrics.writes import Writes

if TYPE_CHECKING:
    from tasks.runtime import BatchOutcome

log = logging.getLogger(__name__)

_store: MetricsStore | None = None
_store_built = False
_store_lock = threading.Lock()


def store() -> MetricsStore | None:
    """This process's store, built on first use; None when metrics are off."""
    global _store, _store_built
    if not _store_built:
        with _store_lock:
            if not _store_built:
                try:
                    _store = MetricsStore.from_env()
                except ConfigError as exc:
                    log.warning("metrics are off: %s", exc)
                    _store = None
                _store_built = True
    return _store


def _guarded(hook: str, build: Callable[..., None], *args: Any) -> None:
    """Run a hook so that no error of ours, even a bug, reaches the task."""
    try:
        writes = Writes()
        build(writes, *args)
        target = store()
        if target is not None:
            target.send(writes)
    except Exception:  # noqa: BLE001 - metrics never fail a task
        log.exception("metrics hook %s failed; the task goes on", hook)


def _received(writes: Writes, collection: str, payload: Any) -> None:
    for entity, event in change_labels(payload):
        writes.inc(RECEIVED, (collection, entity, event))


def changes_received(collection: str, payload: Any) -> None:
    """Count every change of a delivered payload (before it is validated)."""
    _guarded("changes_received", _received, collection, payload)


def _failed(
    writes: Writes, collection: str, payload: Any, exc: BaseException, outcome: MetricDef
) -> None:
    for entity, event in change_labels(payload):
        writes.inc(FAILED, (collection, entity, event))
        writes.inc(outcome, (collection, entity, event))
    writes.inc(TASK_ERRORS, (collection, type(exc).__name__))


def changes_dead_lettered(collection: str, payload: Any, exc: BaseException) -> None:
    """Count the changes of a payload just written to the dead-letter queue."""
    _guarded("changes_dead_lettered", _failed, collection, payload, exc, DEAD_LETTERED)


def changes_retried(collection: str, payload: Any, exc: BaseException) -> None:
    """Count the changes of a payload just sent back to its queue for a retry."""
    _guarded("changes_retried", _failed, collection, payload, exc, RETRIED)


def _applied(writes: Writes, batch: ChangeBatch, outcome: BatchOutcome, seconds: float) -> None:
    collection = batch.collection
    applied_at = time.time()
    for index, change in enumerate(batch.changes):
        if index in outcome.waiting or index in outcome.failed:
            continue
        writes.inc(APPLIED, (collection, str(change.entity_type), change.event_name))
        if change.approximate_creation_time is not None:
            writes.observe(
                LAG,
                (collection, str(change.entity_type)),
                applied_at - change.approximate_creation_time,
            )
    writes.observe(LOCK_WAIT, (collection,), outcome.lock_wait)
    writes.observe(LOCK_HOLD, (collection,), outcome.lock_hold)
    writes.observe(BATCH_APPLY, (collection,), seconds)


def batch_applied(batch: ChangeBatch, outcome: BatchOutcome, seconds: float) -> None:
    """Count applied changes and observe lock wait/hold, batch time and end-to-end lag."""
    _guarded("batch_applied", _applied, batch, outcome, seconds)


def _restarted(writes: Writes, component: str) -> None:
    writes.inc(RESTARTS, (component,))


def component_restarted(component: str) -> None:
    """Count one restart of a worker or the poller by ``chromasync run`` (chromasync.supervisor)."""
    _guarded("component_restarted", _restarted, component)
