"""The Chroma writer: carry out a :class:`~tasks.plan.WritePlan` with as few calls as possible.

Read once (which planned ids exist), then write once per chunk of at most
Chroma's max batch size. Before every write call the lease is checked; a
lost lease stops the batch before the write, never after. Ids that do not
exist yet are not written (Chroma's update silently ignores unknown ids) and
are reported, so the changes that wanted them can be retried; so is a run
whose delta is not in S3 yet.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from tasks.chroma.target import ChromaTarget, chunks
from tasks.errors import DeltaNotReady
from tasks.plan import WritePlan
from tasks.sinks.backend import LeaseCheck, WriteJournal, WriteResult, no_journal

log = logging.getLogger(__name__)

#: Merges a run's delta: (collection, change, lease check, the ids to keep) -> ids merged.
DeltaMerger = Callable[[Any, Any, LeaseCheck, frozenset[str] | None], int]


class ChromaWriter:
    def __init__(self, target: ChromaTarget, write_chunk: int | None = None) -> None:
        """``write_chunk`` caps the ids per write call below Chroma's own limit."""
        self.target = target
        self.write_chunk = write_chunk

    @property
    def chunk_size(self) -> int:
        limit = self.target.max_batch_size
        return min(limit, self.write_chunk) if self.write_chunk else limit

    def existing_ids(self, collection: Any, ids: list[str]) -> set[str]:
        """Which of ``ids`` the collection holds (one ``get`` per Chroma batch of ids)."""
        found: set[str] = set()
        for chunk in chunks(ids, self.target.max_batch_size):
            found.update(collection.get(ids=chunk, include=[])["ids"])
        return found

    def apply(
        self,
        plan: WritePlan,
        check_lease: LeaseCheck,
        merge_delta: DeltaMerger | None = None,
        journal: WriteJournal = no_journal,
    ) -> WriteResult:
        result = WriteResult()
        if plan.empty:
            return result
        collection = self.target.collection(plan.collection)
        size = self.chunk_size
        with self.target.writing(plan.collection):
            # Delta merges first: updates in the same batch may target their ids.
            for merge in plan.merges:
                if merge_delta is None:
                    raise NotImplementedError("compaction run merges need a delta merger")
                start = time.time()
                try:
                    merged = merge_delta(collection, merge.change, check_lease, merge.keep)
                except DeltaNotReady as exc:
                    # This run waits for its upload; the rest of the batch goes on.
                    log.info("delta of %s not ready: %s", merge.change.event_id, exc)
                    result.deltas_not_ready.add(merge.index)
                    continue
                journal("merge", merged, start, time.time())
                result.merged += merged
            wanted = sorted(plan.updates)
            existing = self.existing_ids(collection, wanted) if wanted else set()
            result.missing = set(wanted) - existing
            present = [i for i in wanted if i in existing]
            for chunk in chunks(present, size):
                check_lease()
                start = time.time()
                collection.update(ids=chunk, metadatas=[plan.updates[i] for i in chunk])
                journal("update", len(chunk), start, time.time())
                result.updated += len(chunk)
                result.write_calls += 1
            doomed = set(plan.deletes)
            for image_id, receipt_id in sorted(plan.delete_receipts):
                where = {"$and": [{"image_id": image_id}, {"receipt_id": receipt_id}]}
                doomed.update(collection.get(where=where, include=[])["ids"])
            if doomed:
                to_delete = sorted(self.existing_ids(collection, sorted(doomed)))
                for chunk in chunks(to_delete, size):
                    check_lease()
                    start = time.time()
                    collection.delete(ids=chunk)
                    journal("delete", len(chunk), start, time.time())
                    result.deleted += len(chunk)
                    result.write_calls += 1
        return result
