"""Checkpoints in this process's memory (``memory://NAME``), for tests and one-shot runs.

Every store made from the same URL in one process shares one table of shards, as
every client of one Redis shares its keys; a fresh ``NAME`` starts empty, so tests
use a name of their own instead of a reset. Nothing survives the process: a poller
restarted on it starts its shards over from the trim horizon (re-sending is safe,
the worker is idempotent; skipping would not be).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from producers.checkpoints.backend import CheckpointStore, shard_key


@dataclass
class _Shard:
    sequence_number: str | None = None
    closed: bool = False


@dataclass
class _Shards:
    mutex: threading.Lock = field(default_factory=threading.Lock)
    by_key: dict[str, _Shard] = field(default_factory=dict)


#: The stores of this process by name; entries live as long as the process.
_STORES: dict[str, _Shards] = {}
_STORES_MUTEX = threading.Lock()


class MemoryCheckpointStore(CheckpointStore):
    """Checkpoints kept in this process (``memory://NAME`` URL)."""

    def __init__(self, name: str) -> None:
        self.name = name
        with _STORES_MUTEX:
            self._shards = _STORES.setdefault(name, _Shards())

    def _shard(self, stream_arn: str, shard_id: str) -> _Shard:
        """The shard's entry, made on first use (caller holds the mutex)."""
        return self._shards.by_key.setdefault(shard_key(stream_arn, shard_id), _Shard())

    def get(self, stream_arn: str, shard_id: str) -> str | None:
        with self._shards.mutex:
            return self._shard(stream_arn, shard_id).sequence_number

    def put(self, stream_arn: str, shard_id: str, sequence_number: str) -> None:
        with self._shards.mutex:
            self._shard(stream_arn, shard_id).sequence_number = sequence_number

    def mark_closed(self, stream_arn: str, shard_id: str) -> None:
        with self._shards.mutex:
            self._shard(stream_arn, shard_id).closed = True

    def is_closed(self, stream_arn: str, shard_id: str) -> bool:
        with self._shards.mutex:
            return self._shard(stream_arn, shard_id).closed
