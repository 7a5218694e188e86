"""Change detection: a decoded stream record becomes at most one :class:`Change`.

The rules, per entity (see :mod:`chromasync.core.entities`):

* an entity with monitored fields yields a change on INSERT and REMOVE, and
  on MODIFY only when a monitored field differs by value (maps, lists and
  sets compare by value, numbers exactly);
* an entity without monitored fields (RECEIPT, COMPACTION_RUN) yields a
  change only for the events listed in its spec (a receipt's REMOVE, a run's
  INSERT) — a run marked done by the worker is a MODIFY and is ignored, so
  the worker's own writes never loop back;
* another sink (``CHROMASYNC_SINKS``) may watch more of an entity
  (:mod:`chromasync.core.sinks`): the record then goes to that sink's target
  alone when only what it watches changed;
* a record whose keys are not one of our entities, or whose entity is turned
  off by its feature flag, is ignored and counted with a reason.

Ignored versus malformed: the table holds other entity types and a stream
may be pointed at by mistake from another table, so keys *without* ``PK`` or
``SK`` (another table's keys), a ``PK`` that is not ``IMAGE#...`` and sort
keys of any other shape are ignored (``not_an_entity``). A record is
*malformed* (quarantined for a person to look at) when it cannot be decoded
(no ``Keys``, wrong attribute types), when ``PK``/``SK`` are not strings, or
when its sort key has the shape of one of our entities but an id that cannot
be read (``RECEIPT#abc#LINE#00001``, ``RECEIPT#1``, an empty label): that is
our data, broken, and silently skipping it would hide the breakage.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any, NamedTuple

from pydantic import ValidationError

from chromasync.core.config import Settings
from chromasync.core.contract import validation_reasons, wire_change
from chromasync.core.entities import recognise, resembles
from chromasync.core.routing import routes_of
from chromasync.core.wire import WireChange, json_safe
from producers.decoding import MalformedRecord, StreamRecord

#: Attribute names of the table's partition and sort key.
PK_ATTRIBUTE = "PK"
SK_ATTRIBUTE = "SK"


class Ignored(StrEnum):
    """Why a well-formed record produced no change."""

    NOT_AN_ENTITY = "not_an_entity"
    NO_MONITORED_CHANGE = "no_monitored_change"
    EVENT_NOT_RELEVANT = "event_not_relevant"
    DISABLED = "disabled_by_flag"


class Detected(NamedTuple):
    """A record's change and the targets it goes to (a tuple: one per record)."""

    change: WireChange
    #: The collections and sink targets that take it (:mod:`chromasync.core.routing`).
    targets: tuple[str, ...]


def _key_string(keys: dict[str, Any], name: str) -> str:
    value = keys[name]
    if not isinstance(value, str):
        raise MalformedRecord(
            f"dynamodb.Keys.{name} must be a string (S), got {type(value).__name__}"
        )
    return value


def field_changes(record: StreamRecord, fields: tuple[str, ...]) -> dict[str, dict[str, Any]]:
    """Monitored fields whose value differs between the record's two images.

    As ``{"old": .., "new": ..}`` maps (:class:`~chromasync.core.contract.FieldChange`).
    """
    return {
        name: {"old": json_safe(before), "new": json_safe(after)}
        for name, (before, after) in record.changed_fields(fields).items()
    }


def detect(record: StreamRecord, settings: Settings) -> Detected | Ignored:
    """Turn one record into a change, or say why it is ignored.

    Raises :class:`MalformedRecord` when the record claims to be one of our
    entities but its keys or images cannot be read.
    """
    keys = record.keys
    if PK_ATTRIBUTE not in keys or SK_ATTRIBUTE not in keys:
        return Ignored.NOT_AN_ENTITY  # another table's keys
    pk, sk = keys[PK_ATTRIBUTE], keys[SK_ATTRIBUTE]
    if type(pk) is not str or type(sk) is not str:  # the common case checked inline
        pk = _key_string(keys, PK_ATTRIBUTE)
        sk = _key_string(keys, SK_ATTRIBUTE)
    recognised = recognise(pk, sk)
    if recognised is None:
        lookalike = resembles(pk, sk)
        if lookalike is not None:
            raise MalformedRecord(
                f"SK {sk!r} has the shape of a {lookalike.entity_type} but an id that "
                "is not readable (ids are five digits, names are not empty)"
            )
        return Ignored.NOT_AN_ENTITY
    spec = recognised.spec
    if not settings.enabled_entities.get(spec.flag, True):
        return Ignored.DISABLED
    event = record.event_name
    changes: dict[str, dict[str, Any]] = {}
    if spec.monitored_fields:
        changes = field_changes(record, spec.monitored_fields)
    targets: tuple[str, ...] = ()
    watched = False
    for route in routes_of(settings, spec.entity_type):
        if event in route.events:
            targets += route.targets
        elif event == "MODIFY" and route.fields:
            watched = True
            if route.fields is spec.monitored_fields:
                if changes:
                    targets += route.targets
            elif record.changed_fields(route.fields):
                targets += route.targets
    if not targets:
        return Ignored.NO_MONITORED_CHANGE if watched else Ignored.EVENT_NOT_RELEVANT
    try:
        change = wire_change(
            {
                "entity_type": spec.entity_type,
                "event_name": record.event_name,
                "keys": recognised.keys,
                "changes": changes,
                "sequence_number": record.sequence_number,
                "event_id": record.event_id,
                "approximate_creation_time": record.approximate_creation_time,
            }
        )
    except ValidationError as exc:
        reasons = validation_reasons(exc)
        raise MalformedRecord(f"{spec.entity_type} record {sk!r}: {reasons}") from exc
    return Detected(change, targets)
