"""The message contract between producers and the worker (``schema_version`` 1).

One task message carries a batch of changes for one collection. Both sides
validate it: the producer each change before it publishes (in the wire form,
:func:`wire_change`, the same rules as the models in one pydantic-core call),
the worker with these models before it applies anything, so a payload from
another service that does not fit is rejected whole (into the dead-letter
queue), never half-applied.

Services that only have Celery's ``send_task`` send::

    app.send_task(APPLY_TASK_NAME, args=[payload], queue="<collection>")

where ``payload`` is ``ChangeBatch(...).model_dump(mode="json")``.
"""

from __future__ import annotations

import base64
import re
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated, Any, Final, Literal, NotRequired, Union, cast

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ModelWrapValidatorHandler,
    StringConstraints,
    TypeAdapter,
    ValidationError,
    model_validator,
    with_config,
)
from typing_extensions import TypedDict

from chromasync.core.entities import SPECS_BY_TYPE, EntityType

#: Version of the payload layout; the worker refuses any other.
SCHEMA_VERSION: Literal[1] = 1
#: Celery task name of the worker's batch task.
APPLY_TASK_NAME = "chromasync.apply_changes"
#: Name of the periodic snapshot task (``tasks.snapshots.task``).
SNAPSHOT_TASK_NAME = "chromasync.publish_snapshot"

EventName = Literal["INSERT", "MODIFY", "REMOVE"]
SequenceNumber = Annotated[str, StringConstraints(pattern=r"^\d{1,40}$")]
#: The image id of ``IMAGE#{image_id}``: never empty, no ``#``.
ImageId = Annotated[str, StringConstraints(min_length=1, pattern=r"^[^#]+$")]
#: A receipt's, line's or word's number (five digits in the sort key).
ItemId = Annotated[int, Field(ge=0, le=99999)]
EventId = Annotated[str, StringConstraints(min_length=1, max_length=256)]
#: What a collection's name may hold (it is also a queue's name).
_COLLECTION_CHARS: Final = r"[A-Za-z0-9_-]+"
CollectionName = Annotated[str, StringConstraints(min_length=1, pattern=f"^{_COLLECTION_CHARS}$")]


#: Types :func:`json_safe` returns unchanged (exact types: the fast path).
_PLAIN = frozenset({str, int, float, bool})


def json_safe(value: Any) -> Any:
    """Turn a decoded DynamoDB value into JSON without losing exactness.

    Integral Decimals become ints, other Decimals their exact decimal string,
    sets sorted lists, bytes base64 text.
    """
    if value is None or type(value) in _PLAIN:  # most values: returned as they are
        return value
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else str(value)
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    if isinstance(value, set | frozenset):
        return sorted((json_safe(v) for v in value), key=repr)
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    return value


class ChangeKeys(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    image_id: ImageId
    receipt_id: ItemId
    line_id: ItemId | None = None
    word_id: ItemId | None = None
    label: str | None = None
    run_id: str | None = None


@with_config(ConfigDict(extra="forbid"))
class FieldChange(TypedDict):
    """A monitored field's values before and after (informational; either may be left out).

    A typed dict rather than a model: a label's INSERT carries five of these, and
    a model instance each was a third of the producer's time per record
    (measured with ``chromasync bench``). Validated all the same.
    """

    old: NotRequired[Any]
    new: NotRequired[Any]


#: Keys each entity type must carry.
REQUIRED_KEYS: dict[EntityType, tuple[str, ...]] = {
    EntityType.RECEIPT_METADATA: ("image_id", "receipt_id"),
    EntityType.RECEIPT_WORD_LABEL: ("image_id", "receipt_id", "line_id", "word_id", "label"),
    EntityType.RECEIPT_LINE: ("image_id", "receipt_id", "line_id"),
    EntityType.RECEIPT_WORD: ("image_id", "receipt_id", "line_id", "word_id"),
    EntityType.RECEIPT: ("image_id", "receipt_id"),
    EntityType.COMPACTION_RUN: ("image_id", "receipt_id", "run_id"),
}


#: The keys each entity needs beyond those every change has (image_id, receipt_id).
_OPTIONAL_REQUIRED: dict[EntityType, tuple[str, ...]] = {
    entity: tuple(k for k in keys if k not in ("image_id", "receipt_id"))
    for entity, keys in REQUIRED_KEYS.items()
}

#: Monitored fields of each entity type, as sets (checked for every change).
_MONITORED: dict[EntityType, frozenset[str]] = {
    entity: frozenset(spec.monitored_fields) for entity, spec in SPECS_BY_TYPE.items()
}


class Change(BaseModel):
    """One entity change taken from one stream record."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    entity_type: EntityType
    event_name: EventName
    keys: ChangeKeys
    changes: dict[str, FieldChange] = Field(default_factory=dict)
    sequence_number: SequenceNumber
    event_id: EventId
    approximate_creation_time: float | None = None
    #: Informational only: the worker applies the table's current state, never an
    #: image. chromasync's producers leave it out (it was most of a change's bytes
    #: and of the producer's time); other services may still send it.
    new_image: dict[str, Any] | None = None

    @model_validator(mode="wrap")
    @classmethod
    def _keys_fit_entity(cls, data: Any, handler: ModelWrapValidatorHandler[Change]) -> Change:
        # An instance was checked when it was made (the models are frozen); pydantic
        # would run an "after" validator again for every batch that holds it.
        if isinstance(data, cls):
            return data
        change = handler(data)
        entity = change.entity_type
        keys = change.keys
        for name in _OPTIONAL_REQUIRED[entity]:
            if getattr(keys, name) is None:
                missing = [k for k in REQUIRED_KEYS[entity] if getattr(keys, k) is None]
                raise ValueError(f"{entity.value} change is missing keys: {missing}")
        if change.changes and not change.changes.keys() <= _MONITORED[entity]:
            unknown = sorted(change.changes.keys() - _MONITORED[entity])
            raise ValueError(
                f"{entity.value} change names fields that are not monitored: {unknown}"
            )
        return change

    @property
    def sequence_int(self) -> int:
        return int(self.sequence_number)

    @property
    def receipt_key(self) -> tuple[str, int]:
        return (self.keys.image_id, self.keys.receipt_id)

    def to_wire(self) -> WireChange:
        """The change as a payload carries it (validated already: it is a ``Change``)."""
        return cast(WireChange, self.model_dump(mode="json"))


# -- the wire form: what the producer builds, validates and sends -------------------------
#
# The producer does not make a ``Change`` per record: a model instance (and its
# keys' instance) cost more than everything else it does per record (measured,
# ``python -m benchmarks.producer_cpu``). It builds the change as the JSON-ready
# dict it sends and validates that dict against the same rules in one call into
# pydantic-core: one typed dict per entity, told apart by ``entity_type``, whose
# keys and field names are the entity's own (generated from REQUIRED_KEYS and the
# registry's monitored fields, as the model's checks are). The worker validates
# what it receives with ``Change`` as before; tests hold both to the same verdicts.


class WireKeys(TypedDict):
    """A change's keys in the wire form (those an entity does not need may be left out)."""

    image_id: str
    receipt_id: int
    line_id: NotRequired[int | None]
    word_id: NotRequired[int | None]
    label: NotRequired[str | None]
    run_id: NotRequired[str | None]


class WireChange(TypedDict):
    """A change as the payload carries it; made by :func:`wire_change` (or a model's dump)."""

    #: An :class:`EntityType`'s value.
    entity_type: str
    event_name: EventName
    keys: WireKeys
    changes: NotRequired[dict[str, FieldChange]]
    sequence_number: str
    event_id: str
    approximate_creation_time: NotRequired[float | None]
    new_image: NotRequired[dict[str, Any] | None]


#: The type of each key an entity requires.
_KEY_TYPES: dict[str, Any] = {
    "image_id": ImageId,
    "receipt_id": ItemId,
    "line_id": ItemId,
    "word_id": ItemId,
    "label": str,
    "run_id": str,
}


def _entity_wire_type(entity: EntityType) -> Any:
    """The typed dict one entity's change must fit: its keys required, its fields only."""
    keys = {
        name: kind if name in REQUIRED_KEYS[entity] else NotRequired[kind | None]
        for name, kind in _KEY_TYPES.items()
    }
    monitored = SPECS_BY_TYPE[entity].monitored_fields
    changes: Any = dict[Literal[monitored], FieldChange]  # type: ignore[valid-type]
    if not monitored:  # no field of its own: no field changes at all
        changes = Annotated[dict[str, FieldChange], Field(max_length=0)]
    forbid = with_config(ConfigDict(extra="forbid"))
    fields = {
        # The name as a plain str: pydantic-core serialises an enum member several
        # times slower than a str (the size bound serialises every change).
        "entity_type": Literal[entity.value],
        "event_name": EventName,
        "keys": forbid(TypedDict(f"{entity.value}Keys", keys)),  # type: ignore[operator]
        "changes": NotRequired[changes],
        "sequence_number": SequenceNumber,
        "event_id": EventId,
        "approximate_creation_time": NotRequired[float | None],
        "new_image": NotRequired[dict[str, Any] | None],
    }
    return forbid(TypedDict(f"{entity.value}Change", fields))  # type: ignore[operator]


_ANY_WIRE_CHANGE: Any = Annotated[
    Union[tuple(_entity_wire_type(entity) for entity in EntityType)],  # noqa: UP007
    Field(discriminator="entity_type"),
]
#: Validates a wire change: the typed dict of its ``entity_type``, all in pydantic-core.
_WIRE_CHANGE: TypeAdapter[Any] = TypeAdapter(_ANY_WIRE_CHANGE)
#: Its core validator, called directly: the adapter's own wrapper cost a fifth as much
#: again per change (0.45 of 2.2 µs, measured).
_WIRE_VALIDATOR: Final = _WIRE_CHANGE.validator


def wire_change(fields: dict[str, Any]) -> WireChange:
    """``fields`` validated as a change: what it returns is what the payload carries.

    Raises :class:`pydantic.ValidationError` (errors located under the entity
    type, ``RECEIPT_LINE.keys.line_id``) for anything ``Change`` would refuse.
    """
    return cast(WireChange, _WIRE_VALIDATOR.validate_python(fields))


def _batch_summary(collection: str, batch_id: str, kinds: list[str]) -> str:
    counts: dict[str, int] = {}
    for kind in kinds:
        counts[kind] = counts.get(kind, 0) + 1
    parts = ", ".join(f"{k}x{v}" for k, v in sorted(counts.items()))
    return f"{collection} batch {batch_id[:8]}: {len(kinds)} changes ({parts})"


class ChangeBatch(BaseModel):
    """One task's payload: changes for exactly one collection."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    schema_version: Literal[1] = SCHEMA_VERSION
    batch_id: str = Field(default_factory=lambda: uuid.uuid4().hex)
    collection: CollectionName
    changes: list[Change] = Field(min_length=1)
    produced_at: datetime = Field(default_factory=lambda: datetime.now(UTC))
    producer: str = "chromasync"

    def to_payload(self) -> dict[str, Any]:
        return self.model_dump(mode="json")

    def summary(self) -> str:
        """A short readable line for logs and Flower, never the whole payload."""
        kinds = [f"{c.entity_type.value}:{c.event_name}" for c in self.changes]
        return _batch_summary(self.collection, self.batch_id, kinds)


_COLLECTION_NAME: Final = re.compile(_COLLECTION_CHARS)


@dataclass(frozen=True)
class WireBatch:
    """One task's payload as the producer sends it: wire changes for one collection.

    :class:`ChangeBatch` without a model per change: the payload is the changes
    as they are, so nothing is dumped again to send it. Its changes were
    validated when they were made (:func:`wire_change`, or a ``Change``'s dump).
    """

    collection: str
    changes: list[WireChange]
    producer: str = "chromasync"
    batch_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    produced_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    def __post_init__(self) -> None:
        if not _COLLECTION_NAME.fullmatch(self.collection):
            raise ValueError(f"collection name {self.collection!r} is not {_COLLECTION_CHARS}")
        if not self.changes:
            raise ValueError("a batch holds at least one change")

    @classmethod
    def of(cls, batch: WireBatch | ChangeBatch) -> WireBatch:
        """The same batch (id, time, producer) in the wire form (a WireBatch as it is)."""
        if isinstance(batch, WireBatch):
            return batch
        changes = [c.to_wire() for c in batch.changes]
        return cls(batch.collection, changes, batch.producer, batch.batch_id, batch.produced_at)

    def to_payload(self) -> dict[str, Any]:
        return {
            "schema_version": SCHEMA_VERSION,
            "batch_id": self.batch_id,
            "collection": self.collection,
            "changes": list(self.changes),
            # As pydantic writes it (ChangeBatch's dump, the README): UTC as "Z".
            "produced_at": self.produced_at.isoformat().replace("+00:00", "Z"),
            "producer": self.producer,
        }

    def summary(self) -> str:
        """A short readable line for logs and Flower, never the whole payload."""
        kinds = [f"{c['entity_type']}:{c['event_name']}" for c in self.changes]
        return _batch_summary(self.collection, self.batch_id, kinds)


class BatchEnvelope(BaseModel):
    """A payload's own fields, with its changes not yet validated one by one."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    schema_version: Literal[1]
    batch_id: str = Field(default_factory=lambda: uuid.uuid4().hex)
    collection: CollectionName
    changes: list[Any] = Field(min_length=1)
    produced_at: datetime = Field(default_factory=lambda: datetime.now(UTC))
    producer: str = "unknown"


@dataclass(frozen=True)
class RejectedChange:
    index: int
    change: Any
    error: str


def validate_payload(payload: Any) -> tuple[ChangeBatch | None, list[RejectedChange]]:
    """Validate a task payload change by change.

    A payload whose envelope is wrong (not an object, another schema_version,
    no collection) raises :class:`pydantic.ValidationError`: nothing of it is
    applied. A payload with a sound envelope keeps its valid changes; each
    invalid change is returned with its error, so one bad change does not
    fail the rest of its batch.
    """
    envelope = BatchEnvelope.model_validate(payload)
    valid: list[Change] = []
    rejected: list[RejectedChange] = []
    for index, raw in enumerate(envelope.changes):
        try:
            valid.append(Change.model_validate(raw))
        except ValidationError as exc:
            rejected.append(RejectedChange(index, raw, validation_reasons(exc)[:2000]))
    if not valid:
        return None, rejected
    batch = ChangeBatch(
        batch_id=envelope.batch_id,
        collection=envelope.collection,
        changes=valid,
        produced_at=envelope.produced_at,
        producer=envelope.producer,
    )
    return batch, rejected


def validation_reasons(exc: ValidationError) -> str:
    """Each error of a change's validation as ``where: what``, joined by ``; ``."""
    parts = [f"{'.'.join(str(p) for p in e['loc']) or 'change'}: {e['msg']}" for e in exc.errors()]
    return "; ".join(parts)
