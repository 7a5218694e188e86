"""Unit tests of stream record decoding (pure functions, no servers)."""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from chromasync.core.attributes import MalformedRecord, decode_attribute
from producers.decoding import decode_record


def lambda_record(**body_overrides) -> dict:
    body = {
        "ApproximateCreationDateTime": 1763700000,
        "Keys": {"PK": {"S": "IMAGE#abc"}, "SK": {"S": "RECEIPT#00001#METADATA"}},
        "NewImage": {
            "PK": {"S": "IMAGE#abc"},
            "SK": {"S": "RECEIPT#00001#METADATA"},
            "merchant_name": {"S": "Shell"},
        },
        "OldImage": None,
        "SequenceNumber": "111100000000000000001",
        "SizeBytes": 10,
        "StreamViewType": "NEW_AND_OLD_IMAGES",
    }
    body.update(body_overrides)
    return {"eventID": "e1", "eventName": "INSERT", "eventSource": "aws:dynamodb", "dynamodb": body}


@pytest.mark.parametrize(
    ("typed", "expected"),
    [
        ({"S": "hé"}, "hé"),
        ({"N": "0.1"}, Decimal("0.1")),
        ({"N": "12345678901234567890.123456789"}, Decimal("12345678901234567890.123456789")),
        ({"BOOL": False}, False),
        ({"NULL": True}, None),
        ({"SS": ["a", "b"]}, {"a", "b"}),
        ({"NS": ["1", "2.5"]}, {Decimal("1"), Decimal("2.5")}),
        ({"B": base64.b64encode(b"\x00\xff").decode()}, b"\x00\xff"),
        ({"B": b"\x00\xff"}, b"\x00\xff"),
        ({"BS": [base64.b64encode(b"x").decode(), b"y"]}, {b"x", b"y"}),
        ({"L": [{"S": "a"}, {"N": "1"}, {"L": [{"NULL": True}]}]}, ["a", Decimal(1), [None]]),
        (
            {"M": {"box": {"M": {"x": {"N": "0.5"}}}, "tags": {"SS": ["t"]}}},
            {"box": {"x": Decimal("0.5")}, "tags": {"t"}},
        ),
    ],
)
def test_every_attribute_type_decodes_exactly(typed, expected) -> None:
    value = decode_attribute(typed)
    assert value == expected
    assert type(value) is type(expected)


def test_numbers_are_never_floats() -> None:
    value = decode_attribute({"N": "0.1"})
    assert isinstance(value, Decimal) and value + Decimal("0.2") == Decimal("0.3")


def test_every_number_dynamodb_can_hold_is_read() -> None:
    for text in ("9.9999999999999999999999999999999999999E+125", "-1E-130", "0", "0E+200"):
        assert decode_attribute({"N": text}) == Decimal(text)


@pytest.mark.parametrize(
    ("typed", "message"),
    [
        ({"S": 5}, "S value must be a string"),
        ({"N": "abc"}, "is not a number"),
        ({"N": "NaN"}, "not finite"),
        ({"N": "1E+126"}, "outside DynamoDB's range"),
        ({"N": "-1E-131"}, "outside DynamoDB's range"),
        ({"NS": ["1", "1E+5000"]}, "outside DynamoDB's range"),
        ({"B": "***"}, "not valid base64"),
        ({"BOOL": "yes"}, "BOOL value"),
        ({"SS": "a"}, "must be a list"),
        ({"X": "?"}, "unknown attribute type"),
        ({"S": "a", "N": "1"}, "expected one typed attribute"),
        ("plain", "expected one typed attribute"),
    ],
)
def test_wrong_attribute_types_say_what_is_wrong(typed, message) -> None:
    with pytest.raises(MalformedRecord, match=message):
        decode_attribute(typed, "dynamodb.NewImage.x")


def test_lambda_shape_with_null_old_image() -> None:
    record = decode_record(lambda_record())
    assert record.event_name == "INSERT"
    assert record.old_image is None
    assert record.new_image == {
        "PK": "IMAGE#abc",
        "SK": "RECEIPT#00001#METADATA",
        "merchant_name": "Shell",
    }
    assert record.keys == {"PK": "IMAGE#abc", "SK": "RECEIPT#00001#METADATA"}
    assert record.approximate_creation_time == 1763700000.0
    assert record.sequence_int == 111100000000000000001


def test_lambda_shape_without_images() -> None:
    raw = lambda_record()
    del raw["dynamodb"]["NewImage"]
    del raw["dynamodb"]["OldImage"]
    raw["eventName"] = "REMOVE"
    record = decode_record(raw)
    assert record.new_image is None and record.old_image is None


def test_getrecords_shape_datetime_and_bytes() -> None:
    when = datetime(2026, 11, 22, 4, 0, tzinfo=UTC)
    raw = {
        "eventID": "e2",
        "eventName": "MODIFY",
        "eventVersion": "1.1",
        "dynamodb": {
            "ApproximateCreationDateTime": when,
            "Keys": {"PK": {"S": "IMAGE#abc"}, "SK": {"S": "RECEIPT#00001"}},
            "NewImage": {"blob": {"B": b"\x01"}},
            "OldImage": {"blob": {"B": b"\x02"}},
            "SequenceNumber": "42",
        },
    }
    record = decode_record(raw)
    assert record.approximate_creation_time == when.timestamp()
    assert record.new_image == {"blob": b"\x01"}
    assert record.old_image == {"blob": b"\x02"}


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda r: r.pop("dynamodb"), "no 'dynamodb' object"),
        (lambda r: r.update(eventName="UPSERT"), "eventName"),
        (lambda r: r["dynamodb"].pop("Keys"), "Keys is missing"),
        (lambda r: r["dynamodb"].update(SequenceNumber=12), "SequenceNumber"),
        (lambda r: r["dynamodb"].update(SequenceNumber="12a"), "SequenceNumber"),
        (lambda r: r["dynamodb"].update(ApproximateCreationDateTime="soon"), "epoch seconds"),
        (lambda r: r["dynamodb"].update(NewImage=["x"]), "expected a map"),
    ],
)
def test_malformed_records_are_refused_with_a_reason(mutate, message) -> None:
    raw = lambda_record()
    mutate(raw)
    with pytest.raises(MalformedRecord, match=message):
        decode_record(raw)


def test_non_object_record() -> None:
    with pytest.raises(MalformedRecord, match="must be an object"):
        decode_record(["not", "a", "record"])


def _modify(old: dict, new: dict) -> dict:
    raw = lambda_record(OldImage=old, NewImage=new)
    raw["eventName"] = "MODIFY"
    return raw


def test_changed_fields_compare_values_not_spellings() -> None:
    old = {
        "n": {"N": "1.0"},
        "s": {"SS": ["a", "b"]},
        "same": {"S": "x"},
        "text": {"S": "old"},
        "null": {"NULL": True},
        "gone": {"S": "here"},
    }
    new = {
        "n": {"N": "1"},
        "s": {"SS": ["b", "a"]},
        "same": {"S": "x"},
        "text": {"S": "new"},
        "gone": {"NULL": True},
        "added": {"N": "2"},
    }
    record = decode_record(_modify(old, new))
    names = ("n", "s", "same", "text", "null", "gone", "added", "never")
    assert record.changed_fields(names) == {
        "text": ("old", "new"),
        "null": (None, None),  # present as NULL, then absent: a change
        "gone": ("here", None),
        "added": (None, Decimal("2")),
    }


def test_changed_fields_refuse_a_broken_value_they_read_and_name_it() -> None:
    record = decode_record(_modify({"confidence": {"N": "0.9"}}, {"confidence": {"N": "high"}}))
    with pytest.raises(MalformedRecord, match=r"dynamodb\.NewImage\.confidence.*not a number"):
        record.changed_fields(("confidence",))
    # The whole images decode on demand, with the same errors.
    with pytest.raises(MalformedRecord, match="not a number"):
        _ = record.new_image
    assert record.old_image == {"confidence": Decimal("0.9")}
