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
    CollectionRole,
    Effect,
    EntitySpec,
    specs_with,
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


def fields_patch(spec: EntitySpec, item: Mapping[str, Any] | None) -> Metadata:
    """An item's monitored fields as metadata; all None (cleared) when the item is gone."""
    found = item or {}
    return {name: chroma_value(found.get(name)) for name in spec.monitored_fields}


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


def owner_labels(
    state: ReceiptState, role: CollectionRole, owner_key: tuple[Any, ...]
) -> list[dict[str, Any]]:
    """Every label item under an embedded item (a word's own; a line's words' labels)."""
    return [
        item for spec in specs_with(Effect.LABELS, role) for item in state.under(spec, owner_key)
    ]


def expected_embeddings(state: ReceiptState, role: CollectionRole) -> dict[str, Metadata]:
    """Every embedding a receipt should have in a collection, with its metadata.

    Derived from the registry: one embedding per item of an embedded entity of
    ``role``, holding its own fields, the fields every receipt-wide entity puts
    on it, and the summary of the labels under it.
    """
    shared: Metadata = {}
    for spec in specs_with(Effect.RECEIPT_FIELDS, role):
        shared.update(fields_patch(spec, state.item(spec)))
    labelled = bool(specs_with(Effect.LABELS, role))
    out: dict[str, Metadata] = {}
    for owner in specs_with(Effect.EMBEDDED, role):
        for key, item in state.of(owner).items():
            metadata = {**shared, **fields_patch(owner, item)}
            if labelled:
                metadata.update(label_summary(owner_labels(state, role, key)))
            out[owner.embedding_id(owner.keys_of(state.image_id, state.receipt_id, key))] = metadata
    return out
