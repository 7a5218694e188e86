"""The checkpoint interface every backend implements (one module per backend in ``backends/``).

A checkpoint is the sequence number of the last record of a shard whose
changes were all published. The poller resumes *after* it, so a killed
poller re-sends at most the batch it was working on (the worker is
idempotent) and never skips a record. A shard that ended (split or closed)
is marked closed once all its records were published, so it is not read again.
"""

from __future__ import annotations

import abc


class CheckpointStore(abc.ABC):
    """Remembers, per stream and shard, the last fully published sequence."""

    @abc.abstractmethod
    def get(self, stream_arn: str, shard_id: str) -> str | None:
        """The last published sequence number of a shard; None before its first."""

    @abc.abstractmethod
    def put(self, stream_arn: str, shard_id: str, sequence_number: str) -> None:
        """Record that every record up to ``sequence_number`` was published."""

    @abc.abstractmethod
    def mark_closed(self, stream_arn: str, shard_id: str) -> None:
        """Record that a shard ended and all its records were published."""

    @abc.abstractmethod
    def is_closed(self, stream_arn: str, shard_id: str) -> bool:
        """Whether :meth:`mark_closed` was called for the shard."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release client resources."""


def shard_key(stream_arn: str, shard_id: str) -> str:
    """One shard's name in a store: streams of several tables may share one."""
    return f"{stream_arn}|{shard_id}"
