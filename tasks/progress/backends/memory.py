"""Progress in this process's memory (``memory://NAME``): the fast test lane's store.

Same contract as Redis and DynamoDB (a record only replaces one with a lower
fence). Every store made from the same URL in one process shares one set of
records, as every client of one Redis shares its keys; a fresh ``NAME`` is
empty, so tests use a name of their own instead of a reset.
"""

from __future__ import annotations

import threading

from tasks.progress.backend import AppliedBatch, ProgressStore

#: The records of this process by store name, then by collection.
_RECORDS: dict[str, dict[str, AppliedBatch]] = {}
#: Guards :data:`_RECORDS` and every record set in it.
_MUTEX = threading.Lock()


class MemoryProgressStore(ProgressStore):
    def __init__(self, name: str) -> None:
        self.name = name
        self.where = f"in-process lock store {name!r}"
        with _MUTEX:
            self._records = _RECORDS.setdefault(name, {})

    def record(self, applied: AppliedBatch) -> bool:
        with _MUTEX:
            stored = self._records.get(applied.collection)
            if stored is not None and stored.fence >= applied.fence:
                return False
            self._records[applied.collection] = applied
            return True

    def last(self, collection: str) -> AppliedBatch | None:
        with _MUTEX:
            return self._records.get(collection)
