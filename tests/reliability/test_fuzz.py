"""Fuzzing with hypothesis: stream records and task payloads of every odd shape.

Neither the producer nor the worker crashes; every input is applied, ignored by rule, or
reported (quarantine / dead-letter queue) with a clear error.
"""

from __future__ import annotations

import string
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chromasync.core.contract import validate_payload
from producers.pipeline import StreamProcessor
from producers.publishing import Publisher
from tests.stack import Stack

FUZZ = settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=True),
    st.text(max_size=30),
    st.binary(max_size=10),
)
json_like = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)

typed_value = st.recursive(
    st.one_of(
        st.builds(lambda s: {"S": s}, st.text(max_size=40)),
        st.builds(lambda n: {"N": n}, st.one_of(st.integers().map(str), st.text(max_size=6))),
        st.builds(lambda b: {"BOOL": b}, st.one_of(st.booleans(), st.text(max_size=3))),
        st.just({"NULL": True}),
        st.builds(lambda b: {"B": b}, st.text(max_size=8)),
        st.builds(lambda ss: {"SS": ss}, st.lists(st.text(max_size=5), max_size=3)),
        json_like,
    ),
    lambda inner: st.one_of(
        st.builds(lambda items: {"L": items}, st.lists(inner, max_size=3)),
        st.builds(lambda m: {"M": m}, st.dictionaries(st.text(max_size=6), inner, max_size=3)),
    ),
    max_leaves=8,
)

ids = st.integers(min_value=-1, max_value=100_000)
sk = st.one_of(
    st.builds(lambda r: f"RECEIPT#{r:05d}", ids),
    st.builds(lambda r: f"RECEIPT#{r:05d}#METADATA", ids),
    st.builds(lambda r, li: f"RECEIPT#{r:05d}#LINE#{li:05d}", ids, ids),
    st.builds(lambda r, li, w: f"RECEIPT#{r:05d}#LINE#{li:05d}#WORD#{w:05d}", ids, ids, ids),
    st.builds(
        lambda r, li, w, lab: f"RECEIPT#{r:05d}#LINE#{li:05d}#WORD#{w:05d}#LABEL#{lab}",
        ids,
        ids,
        ids,
        st.text(max_size=12),
    ),
    st.builds(lambda r, run: f"RECEIPT#{r:05d}#COMPACTION_RUN#{run}", ids, st.text(max_size=10)),
    st.text(max_size=40),
)
pk = st.one_of(
    st.builds(lambda i: f"IMAGE#{i}", st.text(string.printable, max_size=20)), st.text(max_size=20)
)
image = st.dictionaries(
    st.sampled_from(
        [
            "merchant_name",
            "text",
            "label",
            "validation_status",
            "confidence",
            "bounding_box",
            "is_noise",
            "reasoning",
            "PK",
            "SK",
            "other",
        ]
    ),
    typed_value,
    max_size=5,
)


@st.composite
def stream_records(draw: Any) -> Any:
    if draw(st.integers(0, 9)) == 0:
        return draw(json_like)  # not a record at all
    keys = draw(
        st.one_of(
            st.fixed_dictionaries(
                {"PK": st.builds(lambda p: {"S": p}, pk), "SK": st.builds(lambda s: {"S": s}, sk)}
            ),
            st.dictionaries(st.text(max_size=4), typed_value, max_size=2),
        )
    )
    body: dict[str, Any] = {
        "Keys": keys,
        "SequenceNumber": draw(st.one_of(st.integers(0, 10**30).map(str), scalars)),
        "ApproximateCreationDateTime": draw(st.one_of(st.integers(0, 2**31), scalars)),
    }
    for name in ("NewImage", "OldImage"):
        choice = draw(st.integers(0, 3))
        if choice == 1:
            body[name] = None
        elif choice >= 2:
            body[name] = draw(image)
    return {
        "eventID": draw(st.text(max_size=10)),
        "eventName": draw(st.sampled_from(["INSERT", "MODIFY", "REMOVE", "UPSERT", ""])),
        "dynamodb": body if draw(st.integers(0, 15)) else draw(json_like),
    }


@pytest.fixture
def fuzz_stack(stack: Stack) -> Stack:
    return stack


@FUZZ
@given(records=st.lists(stream_records(), min_size=1, max_size=6))
def test_the_producer_accounts_for_every_record(fuzz_stack: Stack, records: list[Any]) -> None:
    processor = StreamProcessor(fuzz_stack.settings, Publisher(fuzz_stack.settings))
    report = processor.process(records)
    assert report.failed_from is None, report.error
    accounted = report.changes + sum(report.ignored.values()) + len(report.malformed)
    assert accounted == len(records)
    assert report.quarantined == len(report.malformed)
    for rejected in report.malformed:
        assert rejected.error  # a reason a person can act on


change_like = st.fixed_dictionaries(
    {},
    optional={
        "entity_type": st.one_of(
            st.sampled_from(
                ["RECEIPT_METADATA", "RECEIPT_WORD", "RECEIPT_WORD_LABEL", "RECEIPT", "BOGUS"]
            ),
            scalars,
        ),
        "event_name": st.one_of(st.sampled_from(["INSERT", "MODIFY", "REMOVE"]), scalars),
        "keys": st.one_of(
            st.fixed_dictionaries(
                {"image_id": st.text(max_size=12), "receipt_id": ids},
                optional={"line_id": ids, "word_id": ids, "label": st.text(max_size=8)},
            ),
            json_like,
        ),
        "sequence_number": st.one_of(st.integers(0, 10**20).map(str), scalars),
        "event_id": st.one_of(st.text(min_size=1, max_size=10), scalars),
        "changes": st.one_of(st.just({}), json_like),
    },
)
payloads = st.one_of(
    json_like,
    st.fixed_dictionaries(
        {
            "schema_version": st.one_of(st.just(1), scalars),
            "collection": st.one_of(st.sampled_from(["words", "lines"]), st.text(max_size=8)),
            "changes": st.lists(change_like, max_size=4),
        },
        optional={"batch_id": st.text(max_size=8), "extra": json_like},
    ),
)


@FUZZ
@given(payload=payloads)
def test_the_worker_applies_or_reports_every_payload(fuzz_stack: Stack, payload: Any) -> None:
    from pydantic import ValidationError

    from tasks.compaction import apply_changes
    from tasks.runtime import reset_runtime

    try:
        batch, _rejected = validate_payload(payload)
    except ValidationError:
        batch = None
    result = apply_changes.apply(args=[payload]).get(disable_sync_subtasks=False)
    assert result["status"] in {"applied", "rejected", "retrying", "dead-lettered"}, result
    if batch is None:
        assert result["status"] == "rejected" and result["error"]
    reset_runtime()
