"""Decode DynamoDB stream records of either shape into :class:`StreamRecord`.

Two shapes reach us: a Lambda event (``Records[].dynamodb``; binary values
arrive base64-encoded and ``ApproximateCreationDateTime`` is epoch seconds)
and boto3's ``GetRecords`` output (binary values are ``bytes`` and the time is
a ``datetime``; written out as JSON, base64 text and an ISO 8601 string).
Both become the same record. Numbers stay exact (:class:`decimal.Decimal`),
never float.

Keys and the record's own fields are decoded at once; images are decoded when
asked for, and :meth:`StreamRecord.changed_fields` decodes only the attributes
a diff needs: the producer reads a handful of an image's attributes, and
decoding the others would be most of its per-record work for nothing.

A record that cannot be decoded raises :class:`MalformedRecord` with a message
that says which field is wrong, so it can be reported and counted.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, NamedTuple

from chromasync.core.attributes import (
    MalformedRecord,
    decode_image,
    decode_named,
    is_map,
)

EVENT_NAMES = frozenset({"INSERT", "MODIFY", "REMOVE"})


#: Where each image of a record sits, as an error names it.
NEW_IMAGE = "dynamodb.NewImage"
OLD_IMAGE = "dynamodb.OldImage"


class StreamRecord(NamedTuple):
    """One decoded record; its images stay typed until they are read.

    A named tuple: one is made for every record the producer sees.
    """

    event_id: str
    event_name: str
    sequence_number: str
    approximate_creation_time: float | None
    keys: dict[str, Any]
    #: The images as the stream sent them (typed attribute maps), or None.
    raw_new_image: Mapping[str, Any] | None = None
    raw_old_image: Mapping[str, Any] | None = None

    @property
    def sequence_int(self) -> int:
        return int(self.sequence_number)

    @property
    def new_image(self) -> dict[str, Any] | None:
        """Every attribute of the new image, decoded at each read (or MalformedRecord)."""
        raw = self.raw_new_image
        return None if raw is None else decode_image(raw, NEW_IMAGE)

    @property
    def old_image(self) -> dict[str, Any] | None:
        raw = self.raw_old_image
        return None if raw is None else decode_image(raw, OLD_IMAGE)

    def changed_fields(self, names: Iterable[str]) -> dict[str, tuple[Any, Any]]:
        """``{name: (old, new)}`` for each of ``names`` whose value differs between the images.

        An attribute absent from an image is None there; being present with
        NULL and being absent differ. Values compare exactly (numbers as
        Decimals, sets as sets): identical typed values are equal without
        being decoded, and only differing ones are decoded and compared, so
        ``{"N": "1.0"}`` and ``{"N": "1"}`` are the same number. A value that
        cannot be decoded raises :class:`MalformedRecord` naming its path.
        """
        old = self.raw_old_image or {}
        new = self.raw_new_image or {}
        out: dict[str, tuple[Any, Any]] = {}
        for name in names:
            before, after = old.get(name), new.get(name)
            if before == after:
                continue  # the same typed value (or absent from both)
            old_value = None if before is None else decode_named(before, OLD_IMAGE, name)
            new_value = None if after is None else decode_named(after, NEW_IMAGE, name)
            if old_value != new_value or (before is None) != (after is None):
                out[name] = (old_value, new_value)
        return out


def _image(raw: Any, where: str) -> Mapping[str, Any] | None:
    if raw is None or type(raw) is dict:
        return raw
    if not is_map(raw):
        raise MalformedRecord(f"{where}: expected a map of attributes")
    return raw


def _creation_time(raw: Any) -> float | None:
    if raw is None:
        return None
    if isinstance(raw, datetime):
        return raw.timestamp()
    if isinstance(raw, int | float | Decimal) and not isinstance(raw, bool):
        return float(raw)
    if isinstance(raw, str):
        # Epoch seconds as text, or an ISO 8601 time: what a GetRecords dump
        # written as JSON holds (the AWS CLI prints ISO 8601 by default).
        try:
            return float(raw)
        except ValueError:
            pass
        try:
            parsed = datetime.fromisoformat(raw)
        except ValueError:
            raise MalformedRecord(
                f"dynamodb.ApproximateCreationDateTime {raw!r} is not epoch seconds "
                "or an ISO 8601 time"
            ) from None
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=UTC)
        return parsed.timestamp()
    raise MalformedRecord("dynamodb.ApproximateCreationDateTime has an unexpected type")


def decode_record(record: Any) -> StreamRecord:
    """Decode one record of either shape (Lambda event or GetRecords)."""
    if not is_map(record):
        raise MalformedRecord(f"record must be an object, got {type(record).__name__}")
    body = record.get("dynamodb")
    if not is_map(body):
        raise MalformedRecord("record has no 'dynamodb' object (is this a DynamoDB stream record?)")
    event_name = record.get("eventName")
    if event_name not in EVENT_NAMES:
        raise MalformedRecord(f"eventName {event_name!r} is not one of INSERT, MODIFY, REMOVE")
    sequence = body.get("SequenceNumber")
    if not isinstance(sequence, str) or not sequence.isdigit():
        raise MalformedRecord(f"dynamodb.SequenceNumber {sequence!r} is not a string of digits")
    keys_raw = body.get("Keys")
    if not keys_raw or not is_map(keys_raw):
        raise MalformedRecord("dynamodb.Keys is missing or empty")
    new_raw = _image(body.get("NewImage"), NEW_IMAGE)
    old_raw = _image(body.get("OldImage"), OLD_IMAGE)
    event_id = record.get("eventID")
    # Positional: one is made per record, and keywords cost a NamedTuple half again.
    return StreamRecord(
        sequence if event_id is None else str(event_id),
        str(event_name),
        sequence,
        _creation_time(body.get("ApproximateCreationDateTime")),
        decode_image(keys_raw, "dynamodb.Keys"),
        new_raw,
        old_raw,
    )
