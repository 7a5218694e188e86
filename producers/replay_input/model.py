"""What reading a replay input yields: its items, and what stopped it early."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

#: Bytes of an unreadable input kept (in memory, then in one quarantine message).
UNREADABLE_HEAD_BYTES = 200_000

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
    """The input's shape, and its items read lazily as ``items`` is iterated."""

    kind: str
    #: What a position counts: ``line`` (NDJSON) or ``record`` (one JSON document).
    unit: str
    items: Iterator[tuple[Item, float | None]] = field(default_factory=lambda: iter(()))
    #: What stopped the reading early; known from the start for an unreadable input,
    #: otherwise set once ``items`` is exhausted.
    problem: InputProblem | None = None
