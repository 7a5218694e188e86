"""The worker's long-lived parts and the apply of one batch under its target's lock.

One :class:`WorkerRuntime` per worker process: settings, the lock backend,
the dead-letter queues, the audit log, and the sinks its targets belong to
(built on first use, so a worker of the dashboard never opens Chroma).
``apply_batch`` is the sink-independent write path: take the target's
lease, let the sink write (it checks the lease before each call), fall back
to one change at a time when the batch fails, release.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from chromasync.core.contract import Change, ChangeBatch
from chromasync.core.sinks import CHROMA
from tasks.audit import AuditLog
from tasks.chroma.target import ChromaTarget
from tasks.config import WorkerSettings
from tasks.deadletter import DeadLetterQueues
from tasks.errors import is_transient
from tasks.lease import HeldLease, lease_for
from tasks.locks import lock_backend_from_url
from tasks.locks.backend import LockBackend
from tasks.sinks import build_sink
from tasks.sinks.backend import Sink, WriteResult
from tasks.sinks.chroma import ChromaSink
from tasks.sources import TableReader
from tasks.writer import ChromaWriter, DeltaMerger

log = logging.getLogger(__name__)


@dataclass
class BatchOutcome:
    batch: ChangeBatch
    result: WriteResult = field(default_factory=WriteResult)
    #: Indices of changes that must wait (an embedding not in Chroma yet...).
    waiting: set[int] = field(default_factory=set)
    #: Index → exception for changes that failed on their own.
    failed: dict[int, BaseException] = field(default_factory=dict)
    fence: int | None = None
    lock_wait: float = 0.0
    lock_hold: float = 0.0

    @property
    def applied(self) -> int:
        return len(self.batch.changes) - len(self.waiting) - len(self.failed)


class WorkerRuntime:
    def __init__(
        self,
        settings: WorkerSettings,
        lock_backend: LockBackend | None = None,
        target: ChromaTarget | None = None,
        reader: TableReader | None = None,
        merge_delta: DeltaMerger | None = None,
        sinks: dict[str, Sink] | None = None,
    ) -> None:
        """``target``, ``reader`` and ``merge_delta`` build the Chroma sink from given parts
        (tests and benchmarks); ``sinks`` gives other sinks ready-made."""
        self.settings = settings
        shared = settings.shared
        self.lock_backend = lock_backend or lock_backend_from_url(settings.lock_url, shared.aws)
        self.dead_letters = DeadLetterQueues(shared)
        self.audit = AuditLog(settings.audit_log)
        self._sinks: dict[str, Sink] = dict(sinks or {})
        if target is not None or reader is not None or merge_delta is not None:
            self._sinks[CHROMA] = ChromaSink(settings, target, reader, merge_delta)

    def sink(self, name: str) -> Sink:
        """The sink ``name``, built on first use."""
        sink = self._sinks.get(name)
        if sink is None:
            sink = self._sinks[name] = build_sink(name, self.settings)
        return sink

    def sink_for(self, target: str) -> Sink:
        """The sink a target (collection or sink table) belongs to."""
        return self.sink(self.settings.shared.sink_of(target))

    @property
    def chroma(self) -> ChromaSink:
        sink = self.sink(CHROMA)
        assert isinstance(sink, ChromaSink)
        return sink

    @property
    def target(self) -> ChromaTarget:
        """The Chroma target (snapshots and tests reach the collections through it)."""
        return self.chroma.target

    @property
    def reader(self) -> TableReader:
        return self.chroma.reader

    @property
    def writer(self) -> ChromaWriter:
        return self.chroma.writer

    def lease(self, target: str) -> HeldLease:
        return lease_for(self.lock_backend, target, self.settings)

    def _apply(
        self,
        target: str,
        changes: Sequence[Change],
        held: HeldLease,
        outcome: BatchOutcome,
        offset: list[int],
    ) -> None:
        def journal(kind: str, count: int, start: float, end: float) -> None:
            self.audit.record(
                "write",
                collection=target,
                kind=kind,
                count=count,
                start=start,
                end=end,
                owner=held.owner,
                fence=held.fence,
            )

        written = self.sink_for(target).apply(target, changes, held.check, journal)
        result = written.result
        result.deltas_not_ready = {offset[i] for i in result.deltas_not_ready}
        outcome.waiting.update(offset[i] for i in written.waiting)
        outcome.failed.update((offset[i], exc) for i, exc in written.failed.items())
        outcome.result.add(result)

    def apply_batch(self, batch: ChangeBatch) -> BatchOutcome:
        """Apply a batch under its target's lease.

        A transient error (lock, connectivity, lost lease) propagates so the
        whole batch is retried (applying current state is idempotent). Any
        other error makes the batch fall back to one change at a time, so one
        bad change fails alone.
        """
        self.settings.shared.sink_of(batch.collection)
        outcome = BatchOutcome(batch)
        with self.lease(batch.collection) as held:
            outcome.fence = held.fence
            outcome.lock_wait = held.waited
            where = {"collection": batch.collection, "owner": held.owner, "fence": held.fence}
            self.audit.record("lock_acquired", batch_id=batch.batch_id, **where)
            try:
                self._apply_all(batch, held, outcome)
            finally:
                outcome.lock_hold = time.monotonic() - held.acquired_at
                self.audit.record("lock_releasing", batch_id=batch.batch_id, **where)
        return outcome

    def _apply_all(self, batch: ChangeBatch, held: HeldLease, outcome: BatchOutcome) -> None:
        indices = list(range(len(batch.changes)))
        try:
            self._apply(batch.collection, batch.changes, held, outcome, indices)
            return
        except Exception as exc:
            if is_transient(exc):
                raise
            if len(batch.changes) == 1:
                outcome.failed[0] = exc
                return
            log.warning(
                "batch %s failed (%s); applying its changes one by one", batch.batch_id, exc
            )
        # Start the count again: the one-by-one pass re-applies current state.
        outcome.result = WriteResult()
        outcome.waiting.clear()
        outcome.failed.clear()
        for index, change in enumerate(batch.changes):
            try:
                self._apply(batch.collection, [change], held, outcome, [index])
            except Exception as single:
                if is_transient(single):
                    raise
                outcome.failed[index] = single

    def close(self) -> None:
        for sink in self._sinks.values():
            sink.close()
        self._sinks.clear()
        self.lock_backend.close()


_runtime: WorkerRuntime | None = None


def get_runtime() -> WorkerRuntime:
    """The process's runtime, built on first use (after the pool forks)."""
    global _runtime
    if _runtime is None:
        _runtime = WorkerRuntime(WorkerSettings.from_env())
    return _runtime


def reset_runtime() -> None:
    global _runtime
    if _runtime is not None:
        _runtime.close()
    _runtime = None


def subset(batch: ChangeBatch, indices: set[int] | list[int]) -> dict[str, Any]:
    """The payload of a batch restricted to some of its changes (same batch id)."""
    chosen = [batch.changes[i] for i in sorted(indices)]
    return batch.model_copy(update={"changes": chosen}).to_payload()
