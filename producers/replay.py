"""Replay: stream records kept in a file go through the producer pipeline again.

What the input is (a Lambda event, a list of records, one record, NDJSON, or
none of them) is told from its first bytes before anything is sent, and every
shape is read as a stream: :mod:`producers.replay_input`. NDJSON is read line by
line; a line that is not JSON is reported with its line number and quarantined
like any malformed record, never a crash. A JSON document that stops early
(cut short, or not JSON from some point on) is reported with the records read
before it, which are published; an input that is neither JSON nor NDJSON is
refused by the command unless it is asked to keep it in the quarantine queue.

Records go through :class:`~producers.pipeline.StreamProcessor` in chunks of
:data:`CHUNK_RECORDS`, in file order. At the first chunk with a record that
could not be published (or kept in quarantine) the replay stops and says from
which line (or record) on nothing is certain; replaying the file again is
harmless, since the worker applies current state.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from producers.pipeline import StreamProcessor
from producers.replay_input.model import (
    CUT_SHORT,
    UNREADABLE,
    UNREADABLE_HEAD_BYTES,
    InputProblem,
    Item,
    ReplayInput,
)

__all__ = [
    "CHUNK_RECORDS",
    "ReplayReport",
    "Replayer",
]

#: Records handed to the processor at once: big enough to pack full tasks,
#: small enough that a failure stops the replay early.
CHUNK_RECORDS = 500
#: Malformed lines listed one by one in the summary; the rest are counted.
MAX_LISTED = 20
#: Characters of each listed error (the quarantine queue keeps the whole of it).
MAX_ERROR_CHARS = 200

#: ``(records read so far, fraction of the input read or None when unknown)``.
ProgressCallback = Callable[[int, float | None], None]


@dataclass(frozen=True)
class Problem:
    #: Line or record number; 0 for the whole input (an unreadable one).
    position: int
    error: str


@dataclass
class ReplayReport:
    kind: str
    unit: str
    quarantine_queue: str
    records: int = 0
    changes: int = 0
    tasks: Counter[str] = field(default_factory=Counter)
    ignored: Counter[str] = field(default_factory=Counter)
    malformed: list[Problem] = field(default_factory=list)
    quarantined: int = 0
    #: Position from which records may not have been published; None when all were.
    failed_at: int | None = None
    error: str | None = None
    #: Why the input was not read to its end (or at all); None when it was.
    problem: InputProblem | None = None
    #: An unreadable input was kept whole (its head) in the quarantine queue.
    kept_unreadable: bool = False

    @property
    def unreadable(self) -> bool:
        """The input is neither JSON nor NDJSON (nothing of it was sent as records)."""
        return self.problem is not None and self.problem.kind == UNREADABLE

    @property
    def ok(self) -> bool:
        """Every record of the input was published, ignored or quarantined."""
        if self.failed_at is not None:
            return False
        if self.problem is None:
            return True
        return self.unreadable and self.kept_unreadable

    def fail(self, position: int, error: str | None) -> None:
        """Note that records from ``position`` on may not have been published."""
        if self.failed_at is None or position < self.failed_at:
            self.failed_at = position
            self.error = error

    def _input_line(self, problem: InputProblem) -> str:
        if problem.kind == UNREADABLE:
            kept = (
                f"its first {len(problem.head):,} bytes quarantined as one message"
                if self.kept_unreadable
                else "nothing sent"
            )
            return f"unreadable: {problem.detail}; {kept}"
        if problem.after == 0:
            read = f"no {self.unit} could be read"
        elif problem.after == 1:
            read = f"{self.unit} 1 was read and is counted above"
        else:
            read = f"{self.unit}s 1-{problem.after} were read and are counted above"
        if problem.kind == CUT_SHORT:
            return (
                f"cut short at byte {problem.offset:,}, inside {self.unit} {problem.after + 1} "
                f"({problem.detail}): {read}; the rest is not in the input"
            )
        return (
            f"broken before byte {problem.offset:,}, after {self.unit} {problem.after} "
            f"({problem.detail}): {read}; nothing after the fault was read"
        )

    def render(self, name: str) -> str:
        """The summary printed at the end of ``chromasync replay``."""
        per_queue = ", ".join(f"{c} {n}" for c, n in sorted(self.tasks.items()))
        ignored = ", ".join(f"{r} {n}" for r, n in sorted(self.ignored.items()))
        out = [
            f"chromasync replay of {name} ({self.kind})",
            f"  records           {self.records}",
            f"  changes           {self.changes}",
            f"  tasks sent        {sum(self.tasks.values())}"
            + (f" ({per_queue})" if per_queue else ""),
            f"  ignored           {sum(self.ignored.values())}"
            + (f" ({ignored})" if ignored else ""),
            f"  malformed         {len(self.malformed)} "
            f"({self.quarantined} quarantined in {self.quarantine_queue})",
        ]
        for problem in sorted(self.malformed, key=lambda p: p.position)[:MAX_LISTED]:
            error = " ".join(problem.error.split())  # one line each, however long
            where = f"{self.unit} {problem.position}" if problem.position else "the input"
            out.append(f"    {where}: {error[:MAX_ERROR_CHARS]}")
        if len(self.malformed) > MAX_LISTED:
            out.append(f"    ... and {len(self.malformed) - MAX_LISTED} more")
        if self.problem is None:
            out.append("  input             read to its end")
        else:
            out.append(f"  input             {self._input_line(self.problem)}")
        if self.failed_at is None:
            out.append("  failed            none")
        else:
            where = f"{self.unit} {self.failed_at}" if self.failed_at else "the start"
            out.append(
                f"  failed            from {where} on (replay again; "
                f"duplicates are harmless): {self.error}"
            )
        return "\n".join(out)


class Replayer:
    """Feeds one input through a processor, chunk by chunk, into one report.

    ``quarantine_unreadable`` keeps an input that is neither JSON nor NDJSON in
    the quarantine queue (its first bytes, one message); without it such an
    input is only reported, and nothing is sent.
    """

    def __init__(
        self,
        processor: StreamProcessor,
        chunk_size: int = CHUNK_RECORDS,
        quarantine_unreadable: bool = False,
    ) -> None:
        if chunk_size < 1:
            raise ValueError("chunk_size must be at least 1")
        self.processor = processor
        self.chunk_size = chunk_size
        self.quarantine_unreadable = quarantine_unreadable

    def run(self, source: ReplayInput, progress: ProgressCallback | None = None) -> ReplayReport:
        report = ReplayReport(source.kind, source.unit, self.processor.quarantine.queue_name)
        chunk: list[Item] = []
        fraction: float | None = None
        for item, fraction in source.items:
            chunk.append(item)
            if len(chunk) >= self.chunk_size:
                self._chunk(chunk, report)
                chunk = []
                if progress:
                    progress(report.records, fraction)
                if not report.ok:
                    report.kind = source.kind
                    return report
        if chunk:
            self._chunk(chunk, report)
            if progress:
                progress(report.records, fraction)
        # Known only now: a document's kind when it was read whole, and how reading ended.
        report.kind = source.kind
        report.problem = source.problem
        if report.unreadable and self.quarantine_unreadable:
            self._keep_unreadable(report)
        return report

    def _chunk(self, chunk: list[Item], report: ReplayReport) -> None:
        report.records += len(chunk)
        good = [item for item in chunk if item.error is None]
        for item in chunk:
            if item.error is not None:
                self._quarantine_line(item, report)
        result = self.processor.process([item.record for item in good])
        report.changes += result.changes
        report.ignored.update(result.ignored)
        report.quarantined += result.quarantined
        report.tasks.update(p.collection for p in result.published)
        for rejected in result.malformed:
            report.malformed.append(Problem(good[rejected.index].position, rejected.error))
        if result.failed_from is not None:
            report.fail(good[result.failed_from].position, result.error)

    def _quarantine_line(self, item: Item, report: ReplayReport) -> None:
        assert item.error is not None
        report.malformed.append(Problem(item.position, item.error))
        error = f"{report.unit} {item.position}: {item.error}"
        self._quarantine(item.position, {"text": item.text}, error, report)

    def _keep_unreadable(self, report: ReplayReport) -> None:
        """One message for the whole input: what it starts with, up to UNREADABLE_HEAD_BYTES."""
        assert report.problem is not None
        head = report.problem.head
        error = (
            f"unreadable input, {len(head):,} first bytes kept (at most "
            f"{UNREADABLE_HEAD_BYTES:,}): {report.problem.detail}"
        )
        report.malformed.append(Problem(0, report.problem.detail))
        record = {"text": head.decode("utf-8", "replace")}
        report.kept_unreadable = self._quarantine(0, record, error, report)

    def _quarantine(
        self, position: int, record: dict[str, str], error: str, report: ReplayReport
    ) -> bool:
        quarantine = self.processor.quarantine
        try:
            quarantine.send(record, error, self.processor.source)
        except Exception as exc:  # noqa: BLE001 - reported as a failure of this line
            report.fail(position, f"could not quarantine {error} in {quarantine.queue_name}: {exc}")
            return False
        report.quarantined += 1
        return True
