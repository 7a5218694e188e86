"""The streaming readers of each shape: NDJSON line by line, a JSON document as parsed.

Each starts from a :class:`~producers.replay_input.sniffer.Sniffer`: the bytes
it read first are served again before the rest of the stream.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterable, Iterator
from typing import IO, Any

import ijson

from producers.replay_input.model import (
    BROKEN,
    CUT_SHORT,
    UNREADABLE,
    UNREADABLE_HEAD_BYTES,
    InputProblem,
    Item,
    ReplayInput,
)
from producers.replay_input.sniffer import READ_BYTES, Sniffer

#: Bytes of an unreadable input quoted in the message that refuses it.
QUOTED_BYTES = 24


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


def document_input(kind: str, prefix: str, sniffer: Sniffer, size: int | None) -> ReplayInput:
    """One JSON document, its records handed on as the parser reaches them (``prefix``:
    ijson's path of the records, see :func:`_stream_document`)."""
    reader = _Reader(bytes(sniffer.buf), sniffer.stream, keep=UNREADABLE_HEAD_BYTES)
    reader.consumed = sniffer.skipped_bytes
    source = ReplayInput(kind, "record")
    source.items = _stream_document(source, reader, prefix, size)
    return source


def unreadable_input(sniffer: Sniffer) -> ReplayInput:
    """An input that is neither JSON nor NDJSON: no items, its first bytes kept."""
    head = sniffer.head(UNREADABLE_HEAD_BYTES)
    detail = f"neither JSON nor NDJSON: it starts with {head[:QUOTED_BYTES]!r}"
    problem = InputProblem(UNREADABLE, 0, sniffer.skipped_bytes, detail, head)
    return ReplayInput(UNREADABLE, "record", problem=problem)


def ndjson_input(sniffer: Sniffer, size: int | None) -> ReplayInput:
    """NDJSON, read line by line; positions are line numbers, blank lines counted."""
    lines = io.BufferedReader(_Reader(bytes(sniffer.buf), sniffer.stream), READ_BYTES)
    position = sniffer.skipped_lines + 1
    return ReplayInput("NDJSON", "line", _ndjson(lines, position, sniffer.skipped_bytes, size))
