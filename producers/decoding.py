"""Decode DynamoDB stream records of either shape into :class:`StreamRecord`.

Two shapes reach us: a Lambda event (``Records[].dynamodb``; binary values
arrive base64-encoded and ``ApproximateCreationDateTime`` is epoch seconds)
and boto3's ``GetRecords`` output (binary values are ``bytes`` and the time is
a ``datetime``; written out as JSON, base64 text and an ISO 8601 string).
Both become the same record. Numbers stay exact (:class:`decimal.Decimal`),
never float.

Keys and the record's own fields are decoded at once; images are decoded when
asked for, and :meth:`StreamRecord.changed_fields` decodes only the attributes
a diff needs (measured with ``chromasync bench``: decoding every attribute of
both images was most of the producer's time, and the producer reads a handful
of them).

A record that cannot be decoded raises :class:`MalformedRecord` with a message
that says which field is wrong, so it can be reported and counted.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any, Final, NamedTuple

EVENT_NAMES = frozenset({"INSERT", "MODIFY", "REMOVE"})


class MalformedRecord(ValueError):
    """A stream record that cannot be decoded; the message says why."""


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
            old_value = None if before is None else _decode_one(before, OLD_IMAGE, name)
            new_value = None if after is None else _decode_one(after, NEW_IMAGE, name)
            if old_value != new_value or (before is None) != (after is None):
                out[name] = (old_value, new_value)
        return out


def _is_map(value: Any) -> bool:
    # A plain dict is what JSON and boto3 give; the ABC check is the slow way.
    return type(value) is dict or isinstance(value, Mapping)


def _number(raw: Any, where: str) -> Decimal:
    if not isinstance(raw, str | int) or isinstance(raw, bool):
        raise MalformedRecord(f"{where}: N value must be a string, got {type(raw).__name__}")
    try:
        value = Decimal(str(raw))
    except InvalidOperation:
        raise MalformedRecord(f"{where}: N value {raw!r} is not a number") from None
    if not value.is_finite():
        raise MalformedRecord(f"{where}: N value {raw!r} is not finite")
    if not _in_range(value):
        raise MalformedRecord(
            f"{where}: N value {raw!r} is outside DynamoDB's range (1E-130 to 9.9E+125 "
            "in magnitude); no table can hold it"
        )
    return value


#: Exponents of the smallest and largest magnitudes a DynamoDB number may have.
_MIN_ADJUSTED, _MAX_ADJUSTED = -130, 125


def _in_range(value: Decimal) -> bool:
    """A number DynamoDB can hold: such a record's numbers stay small enough to send
    (``1E+5000`` would become a 5,001-digit int, which the task's JSON refuses)."""
    return not value or _MIN_ADJUSTED <= value.adjusted() <= _MAX_ADJUSTED


def _fast_number(raw: str) -> Decimal | None:
    """A finite number DynamoDB can hold, from its text; or None (the caller reports why)."""
    try:
        value = Decimal(raw)
    except InvalidOperation:
        return None
    return value if value.is_finite() and _in_range(value) else None


def _binary(raw: Any, where: str) -> bytes:
    if isinstance(raw, bytes | bytearray):
        return bytes(raw)
    if isinstance(raw, str):
        try:
            return base64.b64decode(raw, validate=True)
        except (binascii.Error, ValueError):
            raise MalformedRecord(f"{where}: B value is not valid base64") from None
    raise MalformedRecord(f"{where}: B value must be bytes or base64 text")


def _list(raw: Any, where: str, kind: str) -> list[Any]:
    if not isinstance(raw, list):
        raise MalformedRecord(f"{where}: {kind} value must be a list, got {type(raw).__name__}")
    return raw


def decode_attribute(value: Any, where: str = "value") -> Any:
    """Decode one typed DynamoDB attribute value (``{"S": "x"}`` → ``"x"``)."""
    if not _is_map(value) or len(value) != 1:
        raise MalformedRecord(f"{where}: expected one typed attribute like {{'S': ...}}")
    ((kind, raw),) = value.items()
    match kind:
        case "S":
            if not isinstance(raw, str):
                raise MalformedRecord(f"{where}: S value must be a string")
            return raw
        case "N":
            return _number(raw, where)
        case "B":
            return _binary(raw, where)
        case "BOOL":
            if not isinstance(raw, bool):
                raise MalformedRecord(f"{where}: BOOL value must be true or false")
            return raw
        case "NULL":
            return None
        case "SS":
            items = _list(raw, where, kind)
            if not all(isinstance(s, str) for s in items):
                raise MalformedRecord(f"{where}: SS must hold strings only")
            return set(items)
        case "NS":
            return {_number(n, where) for n in _list(raw, where, kind)}
        case "BS":
            return {_binary(b, where) for b in _list(raw, where, kind)}
        case "L":
            return [
                decode_attribute(v, f"{where}[{i}]") for i, v in enumerate(_list(raw, where, kind))
            ]
        case "M":
            return decode_image(raw, where)
        case _:
            raise MalformedRecord(f"{where}: unknown attribute type {kind!r}")


#: What :func:`_well_formed` returns for a value it leaves to :func:`decode_attribute`.
_LONG_WAY: Final = object()


def _well_formed(value: Any) -> Any:
    """The value of a well-formed S, N or BOOL attribute, else :data:`_LONG_WAY`.

    The commonest attributes, decoded to the same result as
    :func:`decode_attribute` without building the path its errors name; anything
    else, or anything wrong, is left to it.
    """
    if type(value) is dict and len(value) == 1:
        ((kind, raw),) = value.items()
        if kind == "S" and type(raw) is str:
            return raw
        if kind == "N" and type(raw) is str:
            number = _fast_number(raw)
            if number is not None:
                return number
        if kind == "BOOL" and type(raw) is bool:
            return raw
    return _LONG_WAY


def decode_image(image: Any, where: str) -> dict[str, Any]:
    if not _is_map(image):
        raise MalformedRecord(f"{where}: expected a map of attributes")
    out: dict[str, Any] = {}
    for k, v in image.items():
        value = _well_formed(v)
        out[str(k)] = decode_attribute(v, f"{where}.{k}") if value is _LONG_WAY else value
    return out


def _decode_one(value: Any, image: str, name: str) -> Any:
    """One attribute of an image (``image`` and ``name`` make the path an error names)."""
    decoded = _well_formed(value)
    return decode_attribute(value, f"{image}.{name}") if decoded is _LONG_WAY else decoded


def _image(raw: Any, where: str) -> Mapping[str, Any] | None:
    if raw is None or type(raw) is dict:
        return raw
    if not _is_map(raw):
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
    if not _is_map(record):
        raise MalformedRecord(f"record must be an object, got {type(record).__name__}")
    body = record.get("dynamodb")
    if not _is_map(body):
        raise MalformedRecord("record has no 'dynamodb' object (is this a DynamoDB stream record?)")
    event_name = record.get("eventName")
    if event_name not in EVENT_NAMES:
        raise MalformedRecord(f"eventName {event_name!r} is not one of INSERT, MODIFY, REMOVE")
    sequence = body.get("SequenceNumber")
    if not isinstance(sequence, str) or not sequence.isdigit():
        raise MalformedRecord(f"dynamodb.SequenceNumber {sequence!r} is not a string of digits")
    keys_raw = body.get("Keys")
    if not keys_raw or not _is_map(keys_raw):
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
