"""What a replay file is, told from its first bytes, then read as a stream, in flat memory.

Shapes (:func:`read_input`):

- **Lambda event** ``{"Records": [...]}`` and **JSON list** ``[...]``: one JSON
  document, parsed incrementally with ijson (yajl's C parser): each record is
  built and handed on as soon as it has been read, so memory holds one read
  buffer and the records of one chunk whatever the file's size
  (``benchmarks/replay_memory.py``, BENCHMARKS.md). A document that stops early
  is reported with the records read before: **cut short** (the input ends inside
  it) or **broken** (not JSON from some point on).
- **NDJSON**: a first line that is a whole JSON object (not an event); read line
  by line, and a line that is not JSON is one malformed record (its line number
  is reported and it is quarantined), as a damaged line of a dump is.
- **JSON record**, or any JSON object whose first key is not ``"Records"``:
  read whole (one stream record is at most a few hundred KB).
- **unreadable**: neither. Its first non-blank byte is not ``{`` or ``[``, or
  the parser rejects it before one record has been read without the input
  having ended. Nothing of it is a record: the command refuses it (exit 2)
  rather than quarantine each of its lines, unless asked to keep it
  (``--quarantine-unreadable``: its first :data:`UNREADABLE_HEAD_BYTES`, one
  message).

Why ijson rather than a parser of our own: the C backend streams from a file
object and builds records as fast as ``json.loads`` builds whole documents
(measured: 0.11 s for a 12.9 MB event, ``json.loads`` 0.27 s), and keeps
numbers exact (``Decimal``, as the decoder does); a hand-written incremental
parser would be pure Python, several times slower, and one more thing to get
right. It is a small wheel in the base install (``chromasync replay`` is part
of the producer).
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import IO, Any

import ijson

#: Bytes asked of the input per read (sniffing, and the JSON parser's buffer).
READ_BYTES = 64 * 1024
#: Longest first line (and second) read whole to tell NDJSON from a document: more than
#: a stream record takes (DynamoDB items are at most 400 KB, a record holds two images).
MAX_SNIFF_LINE = 4 * 1024 * 1024
#: Bytes of an unreadable input kept (in memory, then in one quarantine message).
UNREADABLE_HEAD_BYTES = 200_000
#: Bytes of an unreadable input quoted in the message that refuses it.
QUOTED_BYTES = 24

#: The start of a Lambda event (or of a GetRecords answer as the AWS CLI writes it),
#: and the bytes read to look for it.
_EVENT_START = re.compile(rb'\{\s*"Records"\s*:')
_EVENT_START_BYTES = 256
_BLANK = b" \t\r\n"
_BOM = b"\xef\xbb\xbf"

#: :attr:`InputProblem.kind` of an input that is neither JSON nor NDJSON.
UNREADABLE = "unreadable"
#: :attr:`InputProblem.kind` of a document whose input ends inside it.
CUT_SHORT = "cut short"
#: :attr:`InputProblem.kind` of a document that stops being JSON before its end.
BROKEN = "broken"


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
class InputProblem:
    """Why the input could not be read to its end (or at all)."""

    #: :data:`UNREADABLE`, :data:`CUT_SHORT` or :data:`BROKEN`.
    kind: str
    #: Records read before it (all of them were handed on).
    after: int
    #: Bytes read from the input when it was found (the parser reads ahead, so the
    #: fault lies before this; for a cut-short input it is the input's size).
    offset: int
    #: What the parser said, one line.
    detail: str
    #: The input's first bytes (unreadable input only), for ``--quarantine-unreadable``.
    head: bytes = b""


@dataclass
class ReplayInput:
    kind: str
    #: What a position counts: ``line`` (NDJSON) or ``record`` (one JSON document).
    unit: str
    items: Iterator[tuple[Item, float | None]] = field(default_factory=lambda: iter(()))
    #: What stopped the reading early; known from the start for an unreadable input,
    #: otherwise set once ``items`` is exhausted.
    problem: InputProblem | None = None


class _Reader(io.RawIOBase):
    """The input again from its start: the bytes sniffed first, then the rest of the stream.

    Counts what it served (progress, error offsets), notes when the stream ended,
    and keeps the first ``keep`` bytes. Each read asks the stream once
    (``read1``), so a pipe's records are parsed as they arrive rather than when a
    whole buffer has filled.
    """

    def __init__(self, head: bytes, stream: IO[bytes], keep: int = 0) -> None:
        super().__init__()
        self._head = head
        self._offset = 0
        self._read = getattr(stream, "read1", None) or stream.read
        self._keep = keep
        self.kept = bytearray()
        self.consumed = 0
        self.eof = False

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        if self._offset < len(self._head):
            count = min(len(view), len(self._head) - self._offset)
            view[:count] = self._head[self._offset : self._offset + count]
            self._offset += count
            if self._offset == len(self._head):
                self._head, self._offset = b"", 0  # served: not held any longer
        else:
            chunk = self._read(len(view))
            if not chunk:
                self.eof = True
                return 0
            count = len(chunk)
            view[:count] = chunk
        self.consumed += count
        if len(self.kept) < self._keep:
            self.kept += view[: min(count, self._keep - len(self.kept))]
        return count


class _Sniffer:
    """Reads the input's first bytes into a buffer, as far as telling its shape needs."""

    def __init__(self, stream: IO[bytes]) -> None:
        self.stream = stream
        self._read = getattr(stream, "read1", None) or stream.read
        self.buf = bytearray()
        self.eof = False
        #: Bytes and lines of leading blank space dropped before ``buf``.
        self.skipped_bytes = 0
        self.skipped_lines = 0

    def more(self) -> bool:
        if self.eof:
            return False
        chunk = self._read(READ_BYTES)
        if not chunk:
            self.eof = True
            return False
        self.buf += chunk
        return True

    def first_content(self) -> int | None:
        """The first byte after blank space (and a UTF-8 BOM), or None for a blank input."""
        while len(self.buf) < len(_BOM) and self.more():
            pass
        if self.buf.startswith(_BOM):
            del self.buf[: len(_BOM)]
            self.skipped_bytes += len(_BOM)
        while True:
            stripped = self.buf.lstrip(_BLANK)
            dropped = len(self.buf) - len(stripped)
            self.skipped_lines += self.buf.count(b"\n", 0, dropped)
            self.skipped_bytes += dropped
            del self.buf[:dropped]
            if self.buf:
                return self.buf[0]
            if not self.more():
                return None

    def line_end(self, start: int) -> int | None:
        """Where the line starting at ``start`` ends (its newline, or the input's end).

        None when it is longer than :data:`MAX_SNIFF_LINE`.
        """
        while True:
            end = self.buf.find(b"\n", start)
            if end >= 0:
                return end
            if len(self.buf) - start > MAX_SNIFF_LINE:
                return None
            if not self.more():
                return len(self.buf)

    def head(self, size: int) -> bytes:
        """The first ``size`` bytes (fewer if the input is shorter), read now if need be."""
        while len(self.buf) < size and self.more():
            pass
        return bytes(self.buf[:size])


def _json_object(raw: bytes) -> dict[str, Any] | None:
    try:
        value = json.loads(raw)
    except ValueError:  # not JSON, or not UTF-8
        return None
    return value if isinstance(value, dict) else None


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


def _parser_message(exc: Exception) -> str:
    """The first line of what the parser said (yajl adds a quote of the input below it)."""
    said = exc.args[0] if exc.args else ""
    text = said.decode("utf-8", "replace") if isinstance(said, bytes) else str(said)
    return text.strip().splitlines()[0] if text.strip() else "not JSON"


def _document_kind(doc: Any) -> tuple[str, list[Any]]:
    if isinstance(doc, dict) and isinstance(doc.get("Records"), list):
        return "Lambda event", doc["Records"]
    if isinstance(doc, list):
        return "JSON list of records", doc
    return "JSON record", [doc]


def _stream_document(
    source: ReplayInput, reader: _Reader, prefix: str, size: int | None
) -> Iterator[tuple[Item, float | None]]:
    """The records of one JSON document as the parser reads them; sets ``source.problem``.

    ``prefix`` is ijson's path of the records (``Records.item``, ``item``), or
    ``""`` for a document read whole (a single record, or an object whose first
    key is not ``Records``).
    """
    position = 0
    try:
        for value in ijson.items(reader, prefix, buf_size=READ_BYTES):
            if prefix:
                position += 1
                yield Item(position, record=value), (reader.consumed / size if size else None)
                continue
            source.kind, records = _document_kind(value)
            for index, record in enumerate(records):
                position = index + 1
                yield Item(position, record=record), position / len(records)
    except ijson.JSONError as exc:
        detail = _parser_message(exc)
        if reader.eof:
            kind = CUT_SHORT
        elif position == 0:
            kind = UNREADABLE
            detail = f"it starts like JSON but is not: {detail}"
        else:
            kind = BROKEN
        head = bytes(reader.kept) if kind == UNREADABLE else b""
        source.problem = InputProblem(kind, position, reader.consumed, detail, head)


def _document(kind: str, prefix: str, sniffer: _Sniffer, size: int | None) -> ReplayInput:
    reader = _Reader(bytes(sniffer.buf), sniffer.stream, keep=UNREADABLE_HEAD_BYTES)
    reader.consumed = sniffer.skipped_bytes
    source = ReplayInput(kind, "record")
    source.items = _stream_document(source, reader, prefix, size)
    return source


def _unreadable(sniffer: _Sniffer) -> ReplayInput:
    head = sniffer.head(UNREADABLE_HEAD_BYTES)
    detail = f"neither JSON nor NDJSON: it starts with {head[:QUOTED_BYTES]!r}"
    problem = InputProblem(UNREADABLE, 0, sniffer.skipped_bytes, detail, head)
    return ReplayInput(UNREADABLE, "record", problem=problem)


def _ndjson_input(sniffer: _Sniffer, size: int | None) -> ReplayInput:
    lines = io.BufferedReader(_Reader(bytes(sniffer.buf), sniffer.stream), READ_BYTES)
    position = sniffer.skipped_lines + 1
    return ReplayInput("NDJSON", "line", _ndjson(lines, position, sniffer.skipped_bytes, size))


def read_input(stream: IO[bytes], size: int | None = None) -> ReplayInput:
    """Tell the input's shape from its first bytes (see the module), then read it lazily.

    Reads at most two lines of :data:`MAX_SNIFF_LINE` before deciding, so a
    file of any size is told in bounded memory; nothing is handed on before
    the shape is known. ``size`` (bytes, when known) lets progress be a fraction.
    """
    sniffer = _Sniffer(stream)
    first = sniffer.first_content()
    if first is None:
        return ReplayInput("empty input", "line")
    if first == ord("["):
        return _document("JSON list of records", "item", sniffer, size)
    if first != ord("{"):
        return _unreadable(sniffer)
    while len(sniffer.buf) < _EVENT_START_BYTES and sniffer.more():
        pass
    if _EVENT_START.match(sniffer.buf):
        return _document("Lambda event", "Records.item", sniffer, size)
    end = sniffer.line_end(0)
    if end is None:  # one long line: a document written without newlines
        return _document("JSON document", "", sniffer, size)
    record = _json_object(bytes(sniffer.buf[:end]))
    if record is not None:
        if isinstance(record.get("Records"), list):  # a one-line event, "Records" not first
            return _document("Lambda event", "Records.item", sniffer, size)
        return _ndjson_input(sniffer, size)
    # The first line is not a whole object: a document spread over lines, or NDJSON
    # whose first line is damaged (then the next one is a whole object).
    start = end + 1
    while (start < len(sniffer.buf) or sniffer.more()) and start - end < MAX_SNIFF_LINE:
        if sniffer.buf[start : start + 1] in (b"\n", b"\r", b" ", b"\t"):
            start += 1
            continue
        following = sniffer.line_end(start)
        if following is not None and _json_object(bytes(sniffer.buf[start:following])):
            return _ndjson_input(sniffer, size)
        break
    return _document("JSON document", "", sniffer, size)
