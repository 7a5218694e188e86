"""Packing: the changes of a stream batch become as few task payloads as fit.

Changes are grouped per collection and cut, in stream order, into batches
that stay under :data:`MAX_PAYLOAD_BYTES` and the configured number of changes.
Because a batch is cut in order, the stream's order per receipt is kept.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final, NamedTuple

import pydantic_core

from chromasync.core.contract import FieldChange
from chromasync.core.groups import receipt_group
from chromasync.core.wire import WireBatch, WireChange
from producers.errors import ChangeTooLarge

#: SQS accepts 256 KiB (262,144 bytes) per message; our queues are created
#: with that MaximumMessageSize (chromasync.provision). The payload is encoded
#: twice on its way: Celery's message body is base64 inside kombu's JSON
#: envelope, and kombu's SQS transport base64-encodes that envelope again, so
#: the message is 16/9 of the payload plus 4/3 of the headers. With 4 KiB of
#: room for headers the payload may be (262,144 * 3/4 - 4,096) * 3/4 = 144,384
#: bytes; 140,000 keeps a margin.
MAX_PAYLOAD_BYTES: Final = 140_000


class Routed(NamedTuple):
    """A change bound for one collection (a tuple: one is made per change and collection)."""

    collection: str
    change: WireChange
    #: The change's serialised size, when the caller already measured it (see
    #: :func:`sized`); measuring means serialising, so it is done once per change.
    size: int | None = None


#: Bytes added to each change's measured size, a margin for the spelling of its
#: creation time (the only float a stream change holds).
_FLOAT_SLACK: Final = 8
#: What ``json.dumps`` writes for DEL (``\u007f``) beyond the one byte pydantic-core writes.
_DEL_EXTRA: Final = 5


def _size(change: WireChange) -> int:
    """At least the bytes the change takes in the task as kombu serialises it.

    kombu writes the payload with ``json.dumps`` (default separators, ASCII
    escapes). pydantic-core's JSON is compact and cheaper to make, which counts
    because every change is sized; with ASCII escapes (asked for only when the
    text is not ASCII) it escapes as ``json.dumps`` does but for DEL, which it
    leaves as one byte. So its length, plus one byte per comma and colon (the
    space ``json.dumps`` puts after each separator; those inside strings count
    too, which only overestimates), plus five per DEL, plus one per ``e-``
    (``json.dumps`` writes ``1e-07`` where pydantic-core writes ``1e-7``) bounds
    the real size from above.
    """
    encoded = pydantic_core.to_json(change)
    if not encoded.isascii():
        encoded = pydantic_core.to_json(change, ensure_ascii=True)
    return (
        len(encoded)
        + encoded.count(b",")
        + encoded.count(b":")
        + _DEL_EXTRA * encoded.count(b"\x7f")
        + encoded.count(b"e-")
        + _FLOAT_SLACK
    )


def sized(change: WireChange) -> tuple[WireChange, int]:
    """The change, made to fit one message if it is too big, and its serialised size.

    First the informational ``new_image`` goes, then the old/new values of
    its changed fields (their names stay): the worker re-reads the item's
    current state from the table, so neither is needed to apply the change.
    A DynamoDB item may hold 400 KB, so a MODIFY of a long ``reasoning`` can
    need both steps.
    """
    size = _size(change)
    if size <= MAX_PAYLOAD_BYTES:
        return change, size
    smaller = change.copy()
    smaller.pop("new_image", None)
    size = _size(smaller)
    if size <= MAX_PAYLOAD_BYTES:
        return smaller, size
    names_only: dict[str, FieldChange] = {name: {} for name in change.get("changes", {})}
    smallest: WireChange = {**smaller, "changes": names_only}
    size = _size(smallest)
    if size > MAX_PAYLOAD_BYTES:
        raise ChangeTooLarge(
            f"change {change['event_id']} ({change['entity_type']}) is {size} bytes "
            f"even without its image and values; the limit is {MAX_PAYLOAD_BYTES}"
        )
    return smallest, size


def pack(
    routed: Iterable[Routed],
    max_changes: int,
    producer: str = "chromasync",
    per_receipt: bool = False,
) -> list[WireBatch]:
    """Group routed changes per collection into as few batches as fit.

    With ``per_receipt`` (FIFO queues, one message group per receipt) a batch
    holds the changes of one receipt only, so its group id is exact.
    """
    groups: dict[tuple[str, str], list[tuple[WireChange, int]]] = {}
    for item in routed:
        keys = item.change["keys"]
        key = (
            item.collection,
            receipt_group(keys["image_id"], keys["receipt_id"]) if per_receipt else "",
        )
        fitted = sized(item.change) if item.size is None else (item.change, item.size)
        groups.setdefault(key, []).append(fitted)
    batches: list[WireBatch] = []
    envelope = 512  # the batch's own fields, generously
    for (collection, _group), changes in groups.items():
        current: list[WireChange] = []
        size = envelope
        for change, measured in changes:
            change_size = measured + 2  # ", " between changes
            if current and (len(current) >= max_changes or size + change_size > MAX_PAYLOAD_BYTES):
                batches.append(WireBatch(collection, current, producer))
                current, size = [], envelope
            current.append(change)
            size += change_size
        if current:
            batches.append(WireBatch(collection, current, producer))
    return batches
