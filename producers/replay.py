"""Replay: stream records kept in a file go through the producer pipeline again.

Input is either one JSON document — a Lambda event (``{"Records": [...]}``),
a list of records, or a single record — or NDJSON: one record per line, of
either shape (Lambda or GetRecords written out as JSON). NDJSON is read line
by line, so a dump of any size replays in constant memory; a line that is not
JSON is reported with its line number and quarantined like any malformed
record, never a crash.

Records go through :class:`~producers.pipeline.StreamProcessor` in chunks of
:data:`CHUNK_RECORDS`, in file order. At the first chunk with a record that
could not be published (or kept in quarantine) the replay stops and says from
which line (or record) on nothing is certain; replaying the file again is
harmless, since the worker applies current state.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import IO, Any

from producers.pipeline import StreamProcessor

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
class Item:
    """One record of the input, or a line that could not be read as one."""

    position: int
    record: Any = None
    #: Why the line is not a record (it is not JSON); None for a record.
    error: str | None = None
    #: The line as read, kept for the quarantine when ``error`` is set.
    text: str = ""


@dataclass(frozen=True)
class ReplayInput:
    kind: str
    #: What a position counts: ``line`` (NDJSON) or ``record`` (one JSON document).
    unit: str
    items: Iterator[tuple[Item, float | None]]


def _json_line(position: int, raw: bytes) -> Item:
    try:
        return Item(position, record=json.loads(raw))
    except json.JSONDecodeError as exc:
        error = f"not JSON: {exc.msg} at column {exc.colno}"
    except ValueError:  # bytes that are not UTF-8 text
        error = "not JSON: not UTF-8 text"
    text = raw.decode("utf-8", "replace").rstrip("\r\n")
    return Item(position, error=error, text=text)


def _ndjson(
    lines: Iterable[bytes], first_position: int, consumed: int, size: int | None
) -> Iterator[tuple[Item, float | None]]:
    position = first_position
    for raw in lines:
        consumed += len(raw)
        if raw.strip():
            yield _json_line(position, raw), (consumed / size if size else None)
        position += 1


def _document(doc: Any) -> tuple[str, list[Any]]:
    if isinstance(doc, dict) and isinstance(doc.get("Records"), list):
        return "Lambda event", doc["Records"]
    if isinstance(doc, list):
        return "JSON list of records", doc
    return "JSON record", [doc]


def _records(records: list[Any]) -> Iterator[tuple[Item, float | None]]:
    for index, record in enumerate(records):
        yield Item(index + 1, record=record), (index + 1) / len(records)


def read_input(stream: IO[bytes], size: int | None = None) -> ReplayInput:
    """Tell a JSON document from NDJSON by the first non-blank line, and read it lazily.

    A first line that is a whole JSON object other than a Lambda event starts
    NDJSON; anything else (an event, a list, a document spread over lines) is
    read as one JSON document, and taken as NDJSON with a bad first line if
    it does not parse.

    ``size`` (bytes, when known) lets NDJSON report the fraction read.
    """
    lines = iter(stream)
    head: list[bytes] = []
    for raw in lines:
        head.append(raw)
        if raw.strip():
            break
    if not head or not head[-1].strip():
        return ReplayInput("empty input", "line", iter(()))
    try:
        first: Any = json.loads(head[-1])
    except ValueError:
        first = None  # a JSON document spread over several lines, or a bad NDJSON line
    else:
        if isinstance(first, dict) and "Records" not in first:
            consumed = sum(len(r) for r in head)
            position = len(head)
            items = _ndjson(lines, position + 1, consumed, size)
            return ReplayInput("NDJSON", "line", _chain(_json_line(position, head[-1]), items))
    whole = b"".join(head) + b"".join(lines)
    try:
        doc = json.loads(whole)
    except ValueError as exc:
        return _broken(whole, exc)
    kind, records = _document(doc)
    return ReplayInput(kind, "record", _records(records))


def _chain(
    first: Item, rest: Iterator[tuple[Item, float | None]]
) -> Iterator[tuple[Item, float | None]]:
    yield first, None
    yield from rest


def _broken(whole: bytes, exc: ValueError) -> ReplayInput:
    """Input that is not one JSON document: NDJSON with a bad first line, or no JSON at all."""
    lines = whole.splitlines(keepends=True)
    items = [(_json_line(i + 1, raw), None) for i, raw in enumerate(lines) if raw.strip()]
    if any(item.error is None for item, _ in items):
        return ReplayInput("NDJSON", "line", iter(items))
    # Not one line is JSON: one problem, not one quarantined message per line.
    text = whole[:200_000].decode("utf-8", "replace")
    only = Item(1, error=f"neither a JSON document nor NDJSON: {exc}", text=text)
    return ReplayInput("not JSON", "line", iter([(only, None)]))


@dataclass(frozen=True)
class Problem:
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

    @property
    def ok(self) -> bool:
        return self.failed_at is None

    def fail(self, position: int, error: str | None) -> None:
        """Note that records from ``position`` on may not have been published."""
        if self.failed_at is None or position < self.failed_at:
            self.failed_at = position
            self.error = error

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
            out.append(f"    {self.unit} {problem.position}: {error[:MAX_ERROR_CHARS]}")
        if len(self.malformed) > MAX_LISTED:
            out.append(f"    ... and {len(self.malformed) - MAX_LISTED} more")
        if self.failed_at is None:
            out.append("  failed            none")
        else:
            out.append(
                f"  failed            from {self.unit} {self.failed_at} on (replay again; "
                f"duplicates are harmless): {self.error}"
            )
        return "\n".join(out)


class Replayer:
    """Feeds one input through a processor, chunk by chunk, into one report."""

    def __init__(self, processor: StreamProcessor, chunk_size: int = CHUNK_RECORDS) -> None:
        if chunk_size < 1:
            raise ValueError("chunk_size must be at least 1")
        self.processor = processor
        self.chunk_size = chunk_size

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
                    return report
        if chunk:
            self._chunk(chunk, report)
            if progress:
                progress(report.records, fraction)
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
        quarantine = self.processor.quarantine
        try:
            quarantine.send({"text": item.text}, error, self.processor.source)
        except Exception as exc:  # noqa: BLE001 - reported as a failure of this line
            report.fail(
                item.position, f"could not quarantine {error} in {quarantine.queue_name}: {exc}"
            )
            return
        report.quarantined += 1
