"""Decode DynamoDB's typed attribute values (``{"S": "x"}`` → ``"x"``).

Both sides read them: the producer in stream records' images, the worker in the
items it reads back from the table. Numbers stay exact (:class:`decimal.Decimal`),
never float. A value that cannot be decoded raises :class:`MalformedRecord`,
whose message names the attribute's path.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import Any, Final


class MalformedRecord(ValueError):
    """A stream record that cannot be decoded; the message says why."""


def is_map(value: Any) -> bool:
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
    if not is_map(value) or len(value) != 1:
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
    if not is_map(image):
        raise MalformedRecord(f"{where}: expected a map of attributes")
    out: dict[str, Any] = {}
    for k, v in image.items():
        value = _well_formed(v)
        out[str(k)] = decode_attribute(v, f"{where}.{k}") if value is _LONG_WAY else value
    return out


def decode_named(value: Any, image: str, name: str) -> Any:
    """One attribute of an image (``image`` and ``name`` make the path an error names)."""
    decoded = _well_formed(value)
    return decode_attribute(value, f"{image}.{name}") if decoded is _LONG_WAY else decoded
