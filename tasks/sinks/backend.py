"""The sink interface: what the worker needs of any store it keeps in step with the table.

Everything around a write is the worker's and the same for every sink: the
queue per target, the target's lock (lease, fence, heartbeat), retries with
backoff, dead letters, metrics, progress, ``status`` and ``dlq``. A sink
only says how a batch of changes becomes writes to one of its targets, how
it checks a target against the table, and which changes would repair it.

Rules every sink keeps (the worker's guarantees rest on them):

* **apply current state.** A change says *which* receipt moved; the sink
  reads what the table holds now and writes that, so a duplicate, a replay or
  a reordered change writes the same thing again (exactly once in effect);
* **check the lease before each write call** (``check_lease`` raises once the
  lease is lost, so a stale holder never writes after a newer one);
* **one bad change fails alone:** a change that can never apply is returned
  in :attr:`SinkWrite.failed` (it is dead-lettered with its reason) and one
  that must wait (something it needs is not there yet) in
  :attr:`SinkWrite.waiting` (it is retried with backoff); the rest applies.
  An exception from :meth:`Sink.apply` fails the whole call: a transient one
  (:func:`tasks.errors.is_transient`) retries the batch, any other makes the
  worker apply the batch's changes one by one.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from chromasync.core.contract import Change, ChangeBatch

if TYPE_CHECKING:
    from tasks.config import WorkerSettings

#: Called before every write call; raises when the lease no longer holds.
LeaseCheck = Callable[[], None]
#: Told about every write call: kind, items written, wall-clock start and end.
WriteJournal = Callable[[str, int, float, float], None]


def no_journal(kind: str, count: int, start: float, end: float) -> None:
    """A :data:`WriteJournal` that keeps nothing."""
    return None


@dataclass
class WriteResult:
    """Counts of what a batch wrote, summed over the calls the worker made."""

    #: Items written (embeddings updated, projection items put).
    updated: int = 0
    deleted: int = 0
    #: Ids merged from compaction-run deltas (Chroma).
    merged: int = 0
    write_calls: int = 0
    #: Changes not written because the target already holds a newer state.
    superseded: int = 0
    #: Items the target lacks that waiting changes need (Chroma: embedding ids).
    missing: set[str] = field(default_factory=set)
    #: Indices of changes waiting for an input that is not there yet (a run's delta).
    deltas_not_ready: set[int] = field(default_factory=set)
    #: Why other changes wait, one line each (shown in the retry's reason).
    waits: list[str] = field(default_factory=list)

    def add(self, other: WriteResult) -> None:
        self.updated += other.updated
        self.deleted += other.deleted
        self.merged += other.merged
        self.write_calls += other.write_calls
        self.superseded += other.superseded
        self.missing |= other.missing
        self.deltas_not_ready |= other.deltas_not_ready
        self.waits.extend(other.waits)


@dataclass
class SinkWrite:
    """What one :meth:`Sink.apply` call did; indices are positions in the changes given."""

    result: WriteResult = field(default_factory=WriteResult)
    #: Changes that must wait and be retried.
    waiting: set[int] = field(default_factory=set)
    #: Changes that can never apply, with why (dead-lettered, the rest applies).
    failed: dict[int, BaseException] = field(default_factory=dict)


@dataclass(frozen=True)
class SinkTable:
    """A DynamoDB table a sink writes, as ``chromasync provision`` creates it."""

    name: str
    #: ``CreateTable`` arguments beyond the name (keys, billing mode).
    schema: dict[str, Any]
    #: The attribute DynamoDB's TTL reads (None: no TTL).
    ttl_attribute: str | None = None


@dataclass(frozen=True)
class Drift:
    """One thing a target holds differently from the table."""

    target: str
    #: The item's id in the target (an embedding id, a projection item's key).
    key: str
    #: ``missing``, ``extra`` or a sink's word for a differing item.
    kind: str
    fields: tuple[str, ...] = ()
    detail: str = ""


class Verification(ABC):
    """A sink's verify run: what drifted, and the changes that would repair it."""

    @property
    @abstractmethod
    def drift(self) -> Sequence[Drift]: ...

    @property
    def clean(self) -> bool:
        return not self.drift

    @abstractmethod
    def summary(self) -> str:
        """One line: what was checked and how much drifted."""

    @abstractmethod
    def repairs(self, max_changes: int) -> list[ChangeBatch]:
        """Corrective changes, sent through the normal path (queue, lock, worker)."""

    def unrepairable(self) -> str | None:
        """What no change can repair, for the operator (None: everything can be)."""
        return None


class Sink(ABC):
    """One kind of store kept in step with the table."""

    #: Its name in ``CHROMASYNC_SINKS`` (:data:`chromasync.core.sinks.SINKS`).
    name: ClassVar[str]
    #: Whether ``chromasync snapshot`` can capture and restore its targets.
    supports_snapshots: ClassVar[bool] = False

    @classmethod
    @abstractmethod
    def from_settings(cls, settings: WorkerSettings) -> Sink:
        """The sink as a worker runs it; its own settings come from ``settings.sink_env``."""

    @classmethod
    def check_settings(cls, settings: WorkerSettings) -> None:
        """Raise :class:`~chromasync.core.config.ConfigError` for a wrong setting of this sink."""
        return None

    @classmethod
    def probes(
        cls, settings: WorkerSettings, target: str, dynamodb: Any
    ) -> list[tuple[str, Callable[[], None]]]:
        """``(service, call)`` for what a worker of ``target`` must reach before it
        consumes; a call raises what it met (``MissingResource`` when not provisioned)."""
        return []

    @classmethod
    def tables(cls, settings: WorkerSettings) -> list[SinkTable]:
        """The DynamoDB tables the sink's targets need: ``chromasync provision`` creates
        them (the only code that creates resources), the sink only looks them up."""
        return []

    @abstractmethod
    def apply(
        self,
        target: str,
        changes: Sequence[Change],
        check_lease: LeaseCheck,
        journal: WriteJournal = no_journal,
    ) -> SinkWrite:
        """Write the table's current state for what ``changes`` touch, to ``target``.

        Called with the target's lease held.
        """

    def warm(self, target: str) -> None:
        """Open what the first write to ``target`` needs (called as a worker process starts,
        so the first task does not pay for it)."""
        return None

    @abstractmethod
    def verify(
        self, targets: Sequence[str], image_id: str | None = None, receipt_id: int | None = None
    ) -> Verification:
        """Compare ``targets`` (or the receipts chosen) with what the table says."""

    def close(self) -> None:
        """Release clients and files."""
        return None
