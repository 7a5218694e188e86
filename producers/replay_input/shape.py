"""Which shape a replay input has, told from its first bytes (see the package)."""

from __future__ import annotations

import json
import re
from typing import IO, Any

from producers.replay_input.model import ReplayInput
from producers.replay_input.readers import document_input, ndjson_input, unreadable_input
from producers.replay_input.sniffer import MAX_SNIFF_LINE, Sniffer

#: The start of a Lambda event (or of a GetRecords answer as the AWS CLI writes it),
#: and the bytes read to look for it.
_EVENT_START = re.compile(rb'\{\s*"Records"\s*:')
_EVENT_START_BYTES = 256


def _json_object(raw: bytes) -> dict[str, Any] | None:
    try:
        value = json.loads(raw)
    except ValueError:  # not JSON, or not UTF-8
        return None
    return value if isinstance(value, dict) else None


def read_input(stream: IO[bytes], size: int | None = None) -> ReplayInput:
    """Tell the input's shape from its first bytes (see the package), then read it lazily.

    Reads at most two lines of
    :data:`~producers.replay_input.sniffer.MAX_SNIFF_LINE` before deciding, so a
    file of any size is told in bounded memory; nothing is handed on before
    the shape is known. ``size`` (bytes, when known) lets progress be a fraction.
    """
    sniffer = Sniffer(stream)
    first = sniffer.first_content()
    if first is None:
        return ReplayInput("empty input", "line")
    if first == ord("["):
        return document_input("JSON list of records", "item", sniffer, size)
    if first != ord("{"):
        return unreadable_input(sniffer)
    while len(sniffer.buf) < _EVENT_START_BYTES and sniffer.more():
        pass
    if _EVENT_START.match(sniffer.buf):
        return document_input("Lambda event", "Records.item", sniffer, size)
    end = sniffer.line_end(0)
    if end is None:  # one long line: a document written without newlines
        return document_input("JSON document", "", sniffer, size)
    record = _json_object(bytes(sniffer.buf[:end]))
    if record is not None:
        if isinstance(record.get("Records"), list):  # a one-line event, "Records" not first
            return document_input("Lambda event", "Records.item", sniffer, size)
        return ndjson_input(sniffer, size)
    # The first line is not a whole object: a document spread over lines, or NDJSON
    # whose first line is damaged (then the next one is a whole object).
    start = end + 1
    while (start < len(sniffer.buf) or sniffer.more()) and start - end < MAX_SNIFF_LINE:
        if sniffer.buf[start : start + 1] in (b"\n", b"\r", b" ", b"\t"):
            start += 1
            continue
        following = sniffer.line_end(start)
        if following is not None and _json_object(bytes(sniffer.buf[start:following])):
            return ndjson_input(sniffer, size)
        break
    return document_input("JSON document", "", sniffer, size)
