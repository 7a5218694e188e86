"""Unit tests of packing's size bound (pure functions, no servers).

The producer sizes each change from pydantic's compact JSON and must never
under-estimate what kombu sends (``json.dumps`` with default separators and
ASCII escapes), or a batch could exceed SQS's message limit.
"""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from chromasync.core.contract import wire_change
from chromasync.core.wire import WireChange
from producers.packing import _size

values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(10**30), 10**30)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=60),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)


def _change(old: object, new: object, time: float | None, event_id: str) -> WireChange:
    return wire_change(
        {
            "entity_type": "RECEIPT_WORD_LABEL",
            "event_name": "MODIFY",
            "keys": {
                "image_id": "img, with: commas",
                "receipt_id": 1,
                "line_id": 2,
                "word_id": 3,
                "label": "TOTAL",
            },
            "changes": {"reasoning": {"old": old, "new": new}},
            "sequence_number": "123",
            "event_id": event_id,
            "approximate_creation_time": time,
        }
    )


@settings(max_examples=300, deadline=None)
@given(
    old=values,
    new=values,
    time=st.none() | st.floats(allow_nan=False, allow_infinity=False),
    event_id=st.text(min_size=1, max_size=20),
)
def test_the_size_is_never_below_what_kombu_sends(
    old: object, new: object, time: float | None, event_id: str
) -> None:
    change = _change(old, new, time, event_id)
    sent = len(json.dumps(change))
    assert _size(change) >= sent


def test_the_size_of_plain_text_is_close() -> None:
    change = _change("a" * 5000, "b" * 5000, 1795323378.25, "e1")
    sent = len(json.dumps(change))
    assert sent <= _size(change) <= sent + 64


def test_what_json_dumps_escapes_more_than_pydantic_is_counted() -> None:
    # DEL: one byte from pydantic-core, six from json.dumps; small floats: 1e-7 / 1e-07;
    # non-ASCII and astral text: escaped alike once pydantic-core is asked for ASCII.
    for old, new in [
        ("\x7f" * 3000, None),
        ([1e-7] * 2000, [5e-5, 1.5e-9]),
        ("é" * 2000 + "😀" * 500, "\u2028\x00\x1f"),
        ({"nested": ["\x7f", 1e-8, "ß"]}, "plain"),
    ]:
        change = _change(old, new, 1e-5, "e1")
        sent = len(json.dumps(change))
        assert sent <= _size(change) <= sent + 64, (old, new)
