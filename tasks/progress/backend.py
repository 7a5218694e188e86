"""What a progress store keeps (:class:`AppliedBatch`) and the interface every store implements.

A record only replaces one with a lower fencing number: a worker that
finishes late never hides the batch of the lease that came after it.
"""

from __future__ import annotations

import abc
import json
import os
import socket
import time
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

from chromasync.core.contract import ChangeBatch

if TYPE_CHECKING:
    from tasks.runtime import BatchOutcome

#: Prefix of the progress record's name (Redis key after ``chromasync:``, DynamoDB key).
PROGRESS_PREFIX = "progress:"


@dataclass(frozen=True)
class AppliedBatch:
    collection: str
    batch_id: str
    #: Epoch seconds when the batch's writes had returned.
    applied_at: float
    fence: int
    #: Changes of the batch that were applied.
    changes: int
    #: Highest stream sequence number among them (digits), None if none had one.
    highest_sequence: str | None
    #: ``applied_at`` minus the creation time of the newest change; None if unknown.
    lag: float | None
    #: ``hostname:pid`` of the worker process.
    worker: str

    @classmethod
    def from_outcome(cls, batch: ChangeBatch, outcome: BatchOutcome) -> AppliedBatch:
        applied = [
            c
            for i, c in enumerate(batch.changes)
            if i not in outcome.waiting and i not in outcome.failed
        ]
        now = time.time()
        newest = max(applied, key=lambda c: c.sequence_int) if applied else None
        created = newest.approximate_creation_time if newest else None
        return cls(
            collection=batch.collection,
            batch_id=batch.batch_id,
            applied_at=now,
            fence=outcome.fence or 0,
            changes=len(applied),
            highest_sequence=newest.sequence_number if newest else None,
            lag=max(0.0, now - created) if created is not None else None,
            worker=f"{socket.gethostname()}:{os.getpid()}",
        )

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str | bytes) -> AppliedBatch:
        data = json.loads(text)
        return cls(**{k: data.get(k) for k in cls.__dataclass_fields__})


def progress_name(collection: str) -> str:
    return f"{PROGRESS_PREFIX}collection:{collection}"


class ProgressStore(abc.ABC):
    """Where the last applied batch of each collection is kept."""

    #: Names the store in messages ("Redis lock store at redis://...").
    where: str

    @abc.abstractmethod
    def record(self, applied: AppliedBatch) -> bool:
        """Keep ``applied`` unless a record with a higher or equal fence is there."""

    @abc.abstractmethod
    def last(self, collection: str) -> AppliedBatch | None:
        """The last applied batch of a collection; None when nothing was applied yet."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release client resources."""
