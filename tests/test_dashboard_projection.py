"""The dashboard projection as a pure function of a receipt's state (no servers)."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

import pytest

from chromasync.core.entities import SPECS_BY_TYPE, EntityType
from tasks.sinks.dashboard.projection import ProjectionError, expiry, project, read_amount
from tasks.sources import ReceiptState

IMAGE = "11111111-2222-4333-8444-555555555555"


def state(
    receipt: dict[str, Any] | None = None,
    metadata: dict[str, Any] | None = None,
    words: dict[tuple[int, int], str] | None = None,
    labels: dict[tuple[int, int, str], str | None] | None = None,
) -> ReceiptState:
    """A receipt's state as the reader builds it, from plain items."""
    built = ReceiptState(IMAGE, 7)
    specs = SPECS_BY_TYPE
    if receipt is not None:
        built.add(specs[EntityType.RECEIPT], (), receipt)
    if metadata is not None:
        built.add(specs[EntityType.RECEIPT_METADATA], (), metadata)
    for key, text in (words or {}).items():
        built.add(specs[EntityType.RECEIPT_WORD], key, {"text": text})
    for key, status in (labels or {}).items():
        item = {"label": key[2]} | ({"validation_status": status} if status else {})
        built.add(specs[EntityType.RECEIPT_WORD_LABEL], key, item)
    return built


RECEIPT = {"timestamp_added": "2026-03-04T23:30:00-02:00"}  # 2026-03-05 in UTC
METADATA = {"canonical_merchant_name": "Shell", "merchant_name": "SHELL 42"}


@pytest.mark.parametrize(
    ("text", "amount"),
    [
        ("$1,234.50", Decimal("1234.50")),
        ("12.00", Decimal("12.00")),
        (" 7 ", Decimal("7")),
        ("-3.10", Decimal("-3.10")),
        ("€1.000", Decimal("1.000")),
        ("1.2.3", None),
        ("12,34", None),
        ("TOTAL", None),
        ("", None),
        (None, None),
    ],
)
def test_amounts_read_as_receipts_print_them(text: Any, amount: Decimal | None) -> None:
    assert read_amount(text) == amount


def test_the_day_is_the_utc_date_and_keys_follow_it() -> None:
    projection = project(state(RECEIPT, METADATA, {(1, 1): "9.99"}, {(1, 1, "TOTAL"): None}))
    assert projection.day == "2026-03-05" and projection.expires_at is None
    receipt = projection.items[("MERCHANT#Shell", f"DAY#2026-03-05#RECEIPT#{IMAGE}#00007")]
    assert receipt["total"] == Decimal("9.99") and receipt["labels_pending"] == 1
    label = projection.items[
        ("LABEL#TOTAL#DAY#2026-03-05", f"RECEIPT#{IMAGE}#00007#LINE#00001#WORD#00001")
    ]
    assert label["text"] == "9.99" and "validation_status" not in label


def test_a_label_of_a_word_not_in_the_table_has_no_text() -> None:
    projection = project(state(RECEIPT, METADATA, {}, {(2, 3, "DATE"): "VALID"}))
    (label,) = [i for i in projection.items.values() if i["kind"] == "label"]
    assert "text" not in label and label["validation_status"] == "VALID"


def test_not_projectable_yet_gives_no_items() -> None:
    gone = project(state(None, METADATA))
    assert gone.items == {} and gone.removed
    waiting = project(state(RECEIPT, None))
    assert waiting.items == {} and not waiting.removed


@pytest.mark.parametrize(
    ("receipt", "metadata", "attribute"),
    [
        ({}, METADATA, "timestamp_added"),
        ({"timestamp_added": "yesterday"}, METADATA, "timestamp_added"),
        ({"timestamp_added": 20260101}, METADATA, "timestamp_added"),
        (RECEIPT, {"merchant_name": "SHELL"}, "canonical_merchant_name"),
        (RECEIPT, {"canonical_merchant_name": "  "}, "canonical_merchant_name"),
    ],
)
def test_items_the_dashboard_cannot_key_are_errors_naming_them(
    receipt: dict[str, Any], metadata: dict[str, Any], attribute: str
) -> None:
    with pytest.raises(ProjectionError) as bad:
        project(state(receipt, metadata))
    assert bad.value.attribute == attribute and attribute in str(bad.value)
    assert f"receipt {IMAGE}#00007" in str(bad.value)


def test_ttl_counts_whole_days_from_midnight_utc() -> None:
    projection = project(state(RECEIPT, METADATA), ttl_days=1)
    assert projection.expires_at == 1772755200 == expiry(date(2026, 3, 5), 1)  # 2026-03-06
    assert {i["expires_at"] for i in projection.items.values()} == {1772755200}
    assert expiry(date(2026, 3, 5), 0) is None
