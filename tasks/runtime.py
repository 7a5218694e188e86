"""The worker's long-lived parts and the apply of one batch under the collection's lock.

One :class:`WorkerRuntime` per worker process: settings, the lock backend,
the Chroma target, the table reader, the dead-letter queues. ``apply_batch``
is the whole write path: take the lease, re-read the table, plan, write
(checking the lease before each call), release.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

from chromasync.core.contract import Change, ChangeBatch
from chromasync.core.entities import CollectionRole
from tasks.audit import AuditLog
from tasks.chroma.factory import chroma_target_from_settings
from tasks.chroma.target import ChromaTarget
from tasks.config import WorkerSettings
from tasks.deadletter import DeadLetterQueues
from tasks.deltas.merger import S3DeltaMerger
from tasks.errors import is_transient
from tasks.lease import HeldLease, lease_for
from tasks.locks import lock_backend_from_url
from tasks.locks.backend import LockBackend
from tasks.plan import build_plan, read_scopes
from tasks.sources import TableReader
from tasks.writer import ChromaWriter, DeltaMerger, WriteResult

log = logging.getLogger(__name__)


@dataclass
class BatchOutcome:
    batch: ChangeBatch
    result: WriteResult = field(default_factory=WriteResult)
    #: Indices of changes whose embedding is not in Chroma yet.
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
    ) -> None:
        self.settings = settings
        shared = settings.shared
        self.lock_backend = lock_backend or lock_backend_from_url(settings.lock_url, shared.aws)
        self.target = target or chroma_target_from_settings(settings)
        self.reader = reader or TableReader(shared.aws, shared.table)
        self.writer = ChromaWriter(self.target, settings.write_chunk)
        self.dead_letters = DeadLetterQueues(shared)
        self.merge_delta = merge_delta or S3DeltaMerger.from_settings(
            settings, max_batch_size=self.target.max_batch_size
        )
        self.audit = AuditLog(settings.audit_log)

    def lease(self, collection: str) -> HeldLease:
        return lease_for(self.lock_backend, collection, self.settings)

    def _apply(
        self,
        collection: str,
        role: CollectionRole,
        changes: list[Change],
        held: HeldLease,
        outcome: BatchOutcome,
        offset: list[int],
    ) -> None:
        states = self.reader.read(read_scopes(role, changes))
        plan = build_plan(collection, role, changes, states)

        def journal(kind: str, count: int, start: float, end: float) -> None:
            self.audit.record(
                "write",
                collection=collection,
                kind=kind,
                count=count,
                start=start,
                end=end,
                owner=held.owner,
                fence=held.fence,
            )

        result = self.writer.apply(plan, held.check, self.merge_delta, journal)
        for missing in result.missing:
            outcome.waiting.update(offset[i] for i in plan.wanted_by.get(missing, ()))
        not_ready = {offset[i] for i in result.deltas_not_ready}
        outcome.waiting |= not_ready
        result.missing = {m for m in result.missing if plan.wanted_by.get(m)}
        total = outcome.result
        total.updated += result.updated
        total.deleted += result.deleted
        total.merged += result.merged
        total.write_calls += result.write_calls
        total.missing |= result.missing
        total.deltas_not_ready |= not_ready

    def apply_batch(self, batch: ChangeBatch) -> BatchOutcome:
        """Apply a batch under the collection's lease.

        A transient error (lock, connectivity, lost lease) propagates so the
        whole batch is retried (applying current state is idempotent). Any
        other error makes the batch fall back to one change at a time, so one
        bad change fails alone.
        """
        role = self.settings.shared.role_of(batch.collection)
        outcome = BatchOutcome(batch)
        with self.lease(batch.collection) as held:
            outcome.fence = held.fence
            outcome.lock_wait = held.waited
            where = {"collection": batch.collection, "owner": held.owner, "fence": held.fence}
            self.audit.record("lock_acquired", batch_id=batch.batch_id, **where)
            try:
                self._apply_all(batch, role, held, outcome)
            finally:
                outcome.lock_hold = time.monotonic() - held.acquired_at
                self.audit.record("lock_releasing", batch_id=batch.batch_id, **where)
        return outcome

    def _apply_all(
        self, batch: ChangeBatch, role: CollectionRole, held: HeldLease, outcome: BatchOutcome
    ) -> None:
        indices = list(range(len(batch.changes)))
        try:
            self._apply(batch.collection, role, batch.changes, held, outcome, indices)
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
        for index, change in enumerate(batch.changes):
            try:
                self._apply(batch.collection, role, [change], held, outcome, [index])
            except Exception as single:
                if is_transient(single):
                    raise
                outcome.failed[index] = single

    def close(self) -> None:
        self.target.close()
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
