"""Packing: the changes of a stream batch become as few task payloads as fit.

Changes are grouped per collection and cut, in stream order, into batches
that stay under :data:`MAX_PAYLOAD_BYTES` and the configured number of changes.
Because a batch is cut in order, the stream's order per receipt is kept.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass

from producers.contract import Change, ChangeBatch

#: SQS accepts 256 KiB per message. Celery wraps the payload in a kombu
#: envelope and SQS transport base64-encodes the whole body (4/3 growth), so
#: the payload's JSON must stay well below 192 KiB; 160 KB leaves room for
#: headers.
MAX_PAYLOAD_BYTES = 160_000


class ChangeTooLarge(ValueError):
    """One change alone does not fit in a task message."""


@dataclass(frozen=True)
class Routed:
    """A change bound for one collection."""

    collection: str
    change: Change


def _size(change: Change) -> int:
    return len(json.dumps(change.model_dump(mode="json"), separators=(",", ":")))


def shrink(change: Change) -> Change:
    """Drop the informational ``new_image`` from a change that is too big.

    The worker re-reads the item from the table, so nothing it needs is lost.
    """
    if _size(change) <= MAX_PAYLOAD_BYTES:
        return change
    smaller = change.model_copy(update={"new_image": None})
    if _size(smaller) > MAX_PAYLOAD_BYTES:
        raise ChangeTooLarge(
            f"change {change.event_id} ({change.entity_type.value}) is {_size(smaller)} bytes "
            f"even without its image; the limit is {MAX_PAYLOAD_BYTES}"
        )
    return smaller


def receipt_group(change: Change) -> str:
    """The FIFO message group of a change: its receipt."""
    return f"{change.keys.image_id}#{change.keys.receipt_id:05d}"


def pack(
    routed: Iterable[Routed],
    max_changes: int,
    producer: str = "chromasync",
    per_receipt: bool = False,
) -> list[ChangeBatch]:
    """Group routed changes per collection into as few batches as fit.

    With ``per_receipt`` (FIFO queues, one message group per receipt) a batch
    holds the changes of one receipt only, so its group id is exact.
    """
    groups: dict[tuple[str, str], list[Change]] = {}
    for item in routed:
        key = (item.collection, receipt_group(item.change) if per_receipt else "")
        groups.setdefault(key, []).append(shrink(item.change))
    batches: list[ChangeBatch] = []
    envelope = 512  # the batch's own fields, generously
    for (collection, _group), changes in groups.items():
        current: list[Change] = []
        size = envelope
        for change in changes:
            change_size = _size(change) + 1
            if current and (len(current) >= max_changes or size + change_size > MAX_PAYLOAD_BYTES):
                batches.append(
                    ChangeBatch(collection=collection, changes=current, producer=producer)
                )
                current, size = [], envelope
            current.append(change)
            size += change_size
        if current:
            batches.append(ChangeBatch(collection=collection, changes=current, producer=producer))
    return batches
