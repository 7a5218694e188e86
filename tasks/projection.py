"""What an embedding's metadata should be, given the table's current items.

Pure functions: table items in, Chroma metadata out. A value of ``None``
in a patch removes that key from the embedding's metadata (Chroma's update
merges keys and drops those set to None).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tasks.sources import ReceiptState

from chromasync.core.entities import (
    MERCHANT_FIELDS,
    TEXT_FIELDS,
    line_embedding_id,
    word_embedding_id,
)

Metadata = dict[str, Any]

#: Label statuses that count as valid / invalid; anything else is pending.
VALID_STATUSES = frozenset({"VALID"})
INVALID_STATUSES = frozenset({"INVALID"})

#: Metadata keys of the label summary, on words and lines alike.
LABEL_SUMMARY_KEYS = (
    "valid_labels",
    "invalid_labels",
    "pending_labels",
    "label_status",
    "label_proposed_by",
    "label_validated_at",
)


def chroma_value(value: Any) -> str | int | float | bool | None:
    """Convert a decoded table value into something Chroma metadata holds."""
    if value is None or isinstance(value, str | bool | int | float):
        return value
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, set | frozenset):
        value = sorted(value, key=str)
    return json.dumps(value, default=_json_default, sort_keys=True, separators=(",", ":"))


def _json_default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, set | frozenset):
        return sorted(value, key=str)
    if isinstance(value, bytes):
        return value.hex()
    raise TypeError(f"cannot put {type(value).__name__} into Chroma metadata")


def merchant_patch(metadata_item: Mapping[str, Any] | None) -> Metadata:
    """Merchant fields of a receipt; all None (cleared) when the item is gone."""
    item = metadata_item or {}
    return {name: chroma_value(item.get(name)) for name in MERCHANT_FIELDS}


def text_patch(item: Mapping[str, Any]) -> Metadata:
    """A line's or word's own monitored fields."""
    return {name: chroma_value(item.get(name)) for name in TEXT_FIELDS}


def _joined(labels: Iterable[str]) -> str | None:
    ordered = sorted(set(labels))
    return "," + ",".join(ordered) + "," if ordered else None


def label_summary(labels: Iterable[Mapping[str, Any]]) -> Metadata:
    """Summary of a set of label items (one word's, or every word's of a line).

    ``valid_labels``/``invalid_labels``/``pending_labels`` are comma-delimited
    with leading and trailing commas (``",TOTAL,DATE,"``) so ``$contains``
    finds whole labels; ``label_status`` is ``validated`` when any label is
    valid, else ``pending`` when any awaits validation, else ``invalidated``
    when all were rejected, else absent.
    """
    valid: list[str] = []
    invalid: list[str] = []
    pending: list[str] = []
    latest: tuple[str, str | None] | None = None
    validated_at: str | None = None
    for item in labels:
        label = str(item.get("label", ""))
        if not label:
            continue
        status = str(item.get("validation_status") or "NONE").upper()
        if status in VALID_STATUSES:
            valid.append(label)
            stamp = item.get("validated_at") or item.get("timestamp_added")
            if stamp is not None and (validated_at is None or str(stamp) > validated_at):
                validated_at = str(stamp)
        elif status in INVALID_STATUSES:
            invalid.append(label)
        else:
            pending.append(label)
        added = str(item.get("timestamp_added") or "")
        proposer = item.get("label_proposed_by")
        if latest is None or added >= latest[0]:
            latest = (added, None if proposer is None else str(proposer))
    status_value: str | None
    if valid:
        status_value = "validated"
    elif pending:
        status_value = "pending"
    elif invalid:
        status_value = "invalidated"
    else:
        status_value = None
    return {
        "valid_labels": _joined(valid),
        "invalid_labels": _joined(invalid),
        "pending_labels": _joined(pending),
        "label_status": status_value,
        "label_proposed_by": latest[1] if latest else None,
        "label_validated_at": validated_at,
    }


def expected_embeddings(state: ReceiptState, role: str) -> dict[str, Metadata]:
    """Every embedding a receipt should have in a collection, with its metadata."""
    merchant = merchant_patch(state.metadata)
    out: dict[str, Metadata] = {}
    if role == "lines":
        for lid, item in state.lines.items():
            labels = [
                label
                for (line, _w), by_label in state.labels.items()
                if line == lid
                for label in by_label.values()
            ]
            eid = line_embedding_id(state.image_id, state.receipt_id, lid)
            out[eid] = {**merchant, **text_patch(item), **label_summary(labels)}
    else:
        for (lid, wid), item in state.words.items():
            labels = list(state.labels.get((lid, wid), {}).values())
            eid = word_embedding_id(state.image_id, state.receipt_id, lid, wid)
            out[eid] = {**merchant, **text_patch(item), **label_summary(labels)}
    return out
