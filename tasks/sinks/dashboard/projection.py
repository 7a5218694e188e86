"""What the dashboard holds for one receipt: a pure function of the table's current state.

One *receipt item* under its merchant and day (counts of lines, words and
labels by validation status, and the total when a word labelled ``TOTAL``
reads as an amount), and one *label item* per word label under the label and
day. Apply and verify both call :func:`project`, so a difference verify finds
is real drift, not two opinions.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any, Final

from chromasync.core.entities import SPECS_BY_TYPE, EntityType
from tasks.sinks.dashboard.table import RECEIPT_ATTRIBUTE
from tasks.sources import ReceiptKey, ReceiptState

#: A dashboard item's key: ``(PK, SK)``.
Key = tuple[str, str]

#: The sort key of every receipt's manifest (its partition is the receipt's).
MANIFEST_SK: Final = "MANIFEST"
#: The label whose word's text is a receipt's total.
TOTAL_LABEL: Final = "TOTAL"
#: Validation statuses counted apart; every other status (or none) counts as pending.
VALID: Final = "VALID"
INVALID: Final = "INVALID"
#: An amount as receipts print it: an optional currency sign, thousands commas, decimals.
_AMOUNT: Final = re.compile(r"[$€£]?\s*(-?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?)")

_RECEIPT = SPECS_BY_TYPE[EntityType.RECEIPT]
_METADATA = SPECS_BY_TYPE[EntityType.RECEIPT_METADATA]
_LINE = SPECS_BY_TYPE[EntityType.RECEIPT_LINE]
_WORD = SPECS_BY_TYPE[EntityType.RECEIPT_WORD]
_LABEL = SPECS_BY_TYPE[EntityType.RECEIPT_WORD_LABEL]


class ProjectionError(ValueError):
    """A receipt's items cannot be projected: one lacks what the dashboard is keyed by.

    Permanent: retrying reads the same items. Its changes are dead-lettered with
    this message until someone fixes the item in the table.
    """

    def __init__(self, receipt: ReceiptKey, attribute: str, why: str) -> None:
        self.receipt = receipt
        self.attribute = attribute
        image_id, receipt_id = receipt
        super().__init__(
            f"receipt {image_id}#{receipt_id:05d} cannot be projected onto the dashboard: {why}"
        )


@dataclass(frozen=True)
class Projection:
    """The items one receipt should have in the dashboard (without ``seq``)."""

    receipt: ReceiptKey
    #: Every item by key, ``PK`` and ``SK`` included.
    items: dict[Key, dict[str, Any]] = field(default_factory=dict)
    #: The receipt is gone from the table (its manifest becomes a tombstone).
    removed: bool = False
    #: The receipt's day (``yyyy-mm-dd``) when it is projectable.
    day: str | None = None
    #: Epoch seconds the receipt's items expire at (TTL on), for its manifest too.
    expires_at: int | None = None


def receipt_ref(receipt: ReceiptKey) -> str:
    """``{image_id}#{receipt_id:05d}``: a receipt inside the dashboard's keys."""
    return f"{receipt[0]}#{receipt[1]:05d}"


def manifest_key(receipt: ReceiptKey) -> Key:
    return (f"RECEIPT#{receipt_ref(receipt)}", MANIFEST_SK)


def read_amount(text: Any) -> Decimal | None:
    """The amount a word's text reads as (``$1,234.50`` → ``1234.50``), or None."""
    if not isinstance(text, str):
        return None
    found = _AMOUNT.fullmatch(text.strip())
    if found is None:
        return None
    try:
        return Decimal(found.group(1).replace(",", ""))
    except InvalidOperation:  # pragma: no cover - the pattern admits only digits
        return None


def receipt_day(state: ReceiptState, receipt: dict[str, Any]) -> date:
    """The UTC date of the receipt's ``timestamp_added``; ProjectionError when unreadable."""
    key = (state.image_id, state.receipt_id)
    raw = receipt.get("timestamp_added")
    if not isinstance(raw, str) or not raw.strip():
        raise ProjectionError(
            key,
            "timestamp_added",
            "its RECEIPT item has no timestamp_added, the day it is filed under",
        )
    try:
        moment = datetime.fromisoformat(raw.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ProjectionError(
            key,
            "timestamp_added",
            f"its RECEIPT item's timestamp_added {raw!r} is not an ISO 8601 time, "
            "and the dashboard files receipts by day",
        ) from None
    if moment.tzinfo is None:  # a time without offset is taken as UTC
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).date()


def merchant_of(state: ReceiptState, metadata: dict[str, Any]) -> str:
    """The canonical merchant name; ProjectionError when it is missing or empty."""
    name = metadata.get("canonical_merchant_name")
    if not isinstance(name, str) or not name.strip():
        raise ProjectionError(
            (state.image_id, state.receipt_id),
            "canonical_merchant_name",
            "its RECEIPT_METADATA item has no canonical_merchant_name, the merchant its "
            "dashboard items are keyed by",
        )
    return name


def expiry(day: date, ttl_days: int) -> int | None:
    """Epoch seconds of the day's midnight (UTC) plus ``ttl_days``; None when TTL is off."""
    if ttl_days <= 0:
        return None
    start = datetime.combine(day, time(0), tzinfo=UTC)
    return int((start + timedelta(days=ttl_days)).timestamp())


def _status_counts(labels: list[dict[str, Any]]) -> dict[str, int]:
    statuses = [label.get("validation_status") for label in labels]
    valid = sum(1 for s in statuses if s == VALID)
    invalid = sum(1 for s in statuses if s == INVALID)
    return {
        "labels_valid": valid,
        "labels_invalid": invalid,
        "labels_pending": len(statuses) - valid - invalid,
    }


def _total(state: ReceiptState, labels: dict[tuple[Any, ...], dict[str, Any]]) -> Decimal | None:
    """The amount of a ``TOTAL`` word: a VALID label's first, else the first by key."""
    found: list[tuple[bool, Decimal]] = []
    for (line_id, word_id, label), item in sorted(labels.items()):
        if label != TOTAL_LABEL:
            continue
        word = state.item(_WORD, (line_id, word_id))
        amount = read_amount(word.get("text")) if word is not None else None
        if amount is not None:
            found.append((item.get("validation_status") == VALID, amount))
    valid = [amount for is_valid, amount in found if is_valid]
    if valid:
        return valid[0]
    return found[0][1] if found else None


def project(state: ReceiptState, ttl_days: int = 0) -> Projection:
    """The dashboard items of one receipt (read whole: ``WHOLE_RECEIPT``).

    No items while the receipt is not projectable: it is gone (``removed``), or
    its RECEIPT_METADATA is not written yet. An item the dashboard cannot key
    raises :class:`ProjectionError`.
    """
    key = (state.image_id, state.receipt_id)
    receipt = state.item(_RECEIPT)
    if receipt is None:
        return Projection(key, removed=True)
    day = receipt_day(state, receipt)
    metadata = state.item(_METADATA)
    if metadata is None:
        return Projection(key)
    merchant = merchant_of(state, metadata)
    iso_day = day.isoformat()
    expires_at = expiry(day, ttl_days)
    ref = receipt_ref(key)
    # ``receipt`` keys the by_receipt index, which a repair Queries for strays.
    shared: dict[str, Any] = {"image_id": key[0], "receipt_id": key[1], RECEIPT_ATTRIBUTE: ref}
    if expires_at is not None:
        shared["expires_at"] = expires_at
    labels = dict(sorted(state.of(_LABEL).items()))
    summary: dict[str, Any] = {
        "PK": f"MERCHANT#{merchant}",
        "SK": f"DAY#{iso_day}#RECEIPT#{ref}",
        "kind": "receipt",
        "merchant": merchant,
        "day": iso_day,
        **shared,
        "line_count": len(state.of(_LINE)),
        "word_count": len(state.of(_WORD)),
        **_status_counts(list(labels.values())),
    }
    name = metadata.get("merchant_name")
    if name is not None:
        summary["merchant_name"] = name
    total = _total(state, labels)
    if total is not None:
        summary["total"] = total
    items = {(summary["PK"], summary["SK"]): summary}
    for (line_id, word_id, label), label_item in labels.items():
        item: dict[str, Any] = {
            "PK": f"LABEL#{label}#DAY#{iso_day}",
            "SK": f"RECEIPT#{ref}#LINE#{line_id:05d}#WORD#{word_id:05d}",
            "kind": "label",
            "label": label,
            "day": iso_day,
            "merchant": merchant,
            **shared,
            "line_id": line_id,
            "word_id": word_id,
        }
        word = state.item(_WORD, (line_id, word_id))
        if word is not None and word.get("text") is not None:
            item["text"] = word["text"]
        if label_item.get("validation_status") is not None:
            item["validation_status"] = label_item["validation_status"]
        items[(item["PK"], item["SK"])] = item
    return Projection(key, items, day=iso_day, expires_at=expires_at)
