"""The producer's wire validation and the worker's ``Change`` model give the same verdicts.

The producer validates each change as the dict it sends (``wire_change``, one
call into pydantic-core); the worker validates what it receives with
``Change``. Both must accept and refuse the same changes, or the producer
would publish what the worker dead-letters (or quarantine what it would have
applied). Pure functions: no servers. The generated values are the kinds a
decoded record gives (str, int, float, None, dicts, lists) and wrong ones of
those kinds; bytes are outside that: ``Change`` reads ``b"RECEIPT"`` as text,
``wire_change`` refuses it, and the producer never builds one.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from chromasync.core.contract import Change, ChangeBatch, wire_change
from chromasync.core.entities import REGISTRY, SPECS_BY_TYPE, EntityType
from chromasync.core.wire import WireBatch

MONITORED = sorted({name for spec in REGISTRY for name in spec.monitored_fields})
#: Values, good and bad, that a mutation may put in a key or a field.
KEY_VALUES: dict[str, list[Any]] = {
    "image_id": ["img-1", "scan é", "", "a#b", 5, None],
    "receipt_id": [0, 99999, "12", 100000, -1, 1.5, "x", None],
    "line_id": [0, 99999, "12", 100000, -1, 1.5, None],
    "word_id": [0, 99999, 100000, -1, None],
    "label": ["TOTAL", "", None, 3],
    "run_id": ["run-1", "", None, 3],
    "other": [1],
}
FIELD_VALUES: dict[str, list[Any]] = {
    "entity_type": [*EntityType, "RECEIPT_SECTION", None],
    "event_name": ["INSERT", "REMOVE", "UPSERT", None],
    "sequence_number": ["1", "0" * 40, "0" * 41, "12a", "", 12],
    "event_id": ["e-1", "x" * 256, "x" * 257, "", None],
    "approximate_creation_time": [None, 1795323378.25, "1.5", "soon"],
    "new_image": [None, {"text": "a"}, "text"],
    "changes": [{}, None, "text", {"": {}}, {"not_monitored": {}}],
    "unknown_field": [1],
}
FIELD_CHANGES = [{}, {"old": 1}, {"old": None, "new": "x"}, {"new": {"a": [1]}}, {"x": 1}]


@st.composite
def changes(draw: st.DrawFn) -> dict[str, Any]:
    """A valid change of any entity, then none, one or two changes of the kinds
    that make one invalid (mostly; some mutations keep it valid)."""
    entity = draw(st.sampled_from(list(EntityType)))
    data = _valid(entity)
    fields = SPECS_BY_TYPE[entity].monitored_fields
    if fields:
        names = draw(st.lists(st.sampled_from(fields), max_size=3, unique=True))
        data["changes"] = {name: draw(st.sampled_from(FIELD_CHANGES[:4])) for name in names}
    for _ in range(draw(st.integers(0, 2))):
        keys = data.get("keys")
        if not isinstance(keys, dict):
            keys = {}  # dropped: a key mutation has nothing to change
        match draw(st.sampled_from(["key", "drop key", "field", "drop field", "field change"])):
            case "key":
                name = draw(st.sampled_from(sorted(KEY_VALUES)))
                keys[name] = draw(st.sampled_from(KEY_VALUES[name]))
            case "drop key":
                keys.pop(draw(st.sampled_from(sorted(KEY_VALUES))), None)
            case "field":
                name = draw(st.sampled_from(sorted(FIELD_VALUES)))
                data[name] = draw(st.sampled_from(FIELD_VALUES[name]))
            case "drop field":
                data.pop(draw(st.sampled_from(sorted(data))), None)
            case "field change":
                if isinstance(data.get("changes"), dict):
                    name = draw(st.sampled_from([*MONITORED, "not_monitored"]))
                    data["changes"][name] = draw(st.sampled_from(FIELD_CHANGES))
    return data


def _verdict(validate: Any, data: dict[str, Any]) -> Any:
    try:
        return validate(data)
    except ValidationError:
        return None


@settings(max_examples=1500, deadline=None)
@given(data=changes())
def test_wire_validation_and_the_change_model_agree(data: dict[str, Any]) -> None:
    data = copy.deepcopy(data)
    model = _verdict(Change.model_validate, data)
    wire = _verdict(wire_change, data)
    assert (model is None) == (wire is None), (model, wire)
    if wire is not None:
        # What the producer sends is read by the worker as the same change.
        assert Change.model_validate(wire) == model


def _valid(entity: EntityType) -> dict[str, Any]:
    keys: dict[str, Any] = {"image_id": "img-1", "receipt_id": 1}
    for name in SPECS_BY_TYPE[entity].keys:
        keys.setdefault(name, "run-1" if name == "run_id" else "TOTAL" if name == "label" else 2)
    fields = SPECS_BY_TYPE[entity].monitored_fields
    return {
        "entity_type": entity,
        "event_name": "MODIFY",
        "keys": keys,
        "changes": {fields[0]: {"old": "a", "new": "b"}} if fields else {},
        "sequence_number": "42",
        "event_id": "e-42",
    }


@pytest.mark.parametrize("entity", list(EntityType))
def test_every_entity_needs_each_of_its_keys(entity: EntityType) -> None:
    assert Change.model_validate(wire_change(_valid(entity))) == Change.model_validate(
        _valid(entity)
    )
    for name in SPECS_BY_TYPE[entity].keys:
        data = _valid(entity)
        del data["keys"][name]
        with pytest.raises(ValidationError, match=f"{entity.value}.keys.{name}"):
            wire_change(data)
        with pytest.raises(ValidationError, match=name):
            Change.model_validate(data)


def test_a_field_the_entity_does_not_monitor_is_refused_by_name() -> None:
    data = _valid(EntityType.RECEIPT_LINE)
    data["changes"] = {"merchant_name": {"new": "x"}}
    with pytest.raises(ValidationError, match="RECEIPT_LINE.changes.merchant_name"):
        wire_change(data)
    receipt = _valid(EntityType.RECEIPT)
    receipt["changes"] = {"text": {}}
    with pytest.raises(ValidationError, match="RECEIPT.changes"):
        wire_change(receipt)


def test_a_wire_batch_is_the_payload_the_worker_reads() -> None:
    changes = [wire_change(_valid(entity)) for entity in EntityType]
    batch = WireBatch("lines", changes, producer="test")
    read = ChangeBatch.model_validate(batch.to_payload())
    assert read.batch_id == batch.batch_id and read.produced_at == batch.produced_at
    assert read.changes == [Change.model_validate(_valid(entity)) for entity in EntityType]
    assert WireBatch.of(read).to_payload() == {
        **batch.to_payload(),
        "changes": [c.model_dump(mode="json") for c in read.changes],
    }
    assert batch.summary() == read.summary()
    assert batch.to_payload()["produced_at"] == read.model_dump(mode="json")["produced_at"]
    with pytest.raises(ValueError, match="collection name"):
        WireBatch("lines/1", changes)
    with pytest.raises(ValueError, match="at least one change"):
        WireBatch("lines", [])
