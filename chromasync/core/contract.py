"""The message contract between producers and the worker (``schema_version`` 1).

One task message carries a batch of changes for one collection. Both sides
validate it against one schema: per entity, the typed dict of
:func:`_entity_schema`, made from the registry (its keys from the sort-key
template, its fields from the monitored ones). The producer validates each
change in that wire form before it publishes (:func:`wire_change`, one call
into pydantic-core); the worker validates with :class:`Change`, whose checks
run the same schema, so a payload from another service that does not fit is
rejected (into the dead-letter queue), never half-applied.

Services that only have Celery's ``send_task`` send::

    app.send_task(APPLY_TASK_NAME, args=[payload], queue="<collection>")

where ``payload`` is ``ChangeBatch(...).model_dump(mode="json")``.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any, Final, Literal, NotRequired, Union, cast

from pydantic import (
    AfterValidator,
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

from chromasync.core.entities import REGISTRY, SPECS_BY_TYPE, EntitySpec

if TYPE_CHECKING:
    from chromasync.core.wire import WireChange

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
COLLECTION_CHARS: Final = r"[A-Za-z0-9_-]+"
CollectionName = Annotated[str, StringConstraints(min_length=1, pattern=f"^{COLLECTION_CHARS}$")]


def _registered(name: str) -> str:
    """The registry's own name object (an ``EntityType`` for the built-in entities)."""
    return SPECS_BY_TYPE[name].entity_type


#: An entity's name, as the registry spells it (the schema has refused any other).
EntityName = Annotated[str, AfterValidator(_registered)]


class ChangeKeys(BaseModel):
    """Every key a change may carry; which ones an entity needs is its schema's business."""

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
    the producer makes one per monitored field of every record.
    """

    old: NotRequired[Any]
    new: NotRequired[Any]


#: The type of each key (:data:`chromasync.core.entities.KEY_NAMES`) in a change.
_KEY_TYPES: Final[dict[str, Any]] = {
    "image_id": ImageId,
    "receipt_id": ItemId,
    "line_id": ItemId,
    "word_id": ItemId,
    "label": str,
    "run_id": str,
}


def _entity_schema(spec: EntitySpec) -> Any:
    """The typed dict one entity's change must fit: its keys required, its fields only."""
    keys = {
        name: kind if name in spec.keys else NotRequired[kind | None]
        for name, kind in _KEY_TYPES.items()
    }
    monitored = spec.monitored_fields
    changes: Any = dict[Literal[monitored], FieldChange]  # type: ignore[valid-type]
    if not monitored:  # no field of its own: no field changes at all
        changes = Annotated[dict[str, FieldChange], Field(max_length=0)]
    forbid = with_config(ConfigDict(extra="forbid"))
    name = str(spec.entity_type)
    fields = {
        # The name as a plain str: pydantic-core serialises a str faster than an
        # enum member, and the size bound serialises every change.
        "entity_type": Literal[name],
        "event_name": EventName,
        "keys": forbid(TypedDict(f"{name}Keys", keys)),  # type: ignore[operator]
        "changes": NotRequired[changes],
        "sequence_number": SequenceNumber,
        "event_id": EventId,
        "approximate_creation_time": NotRequired[float | None],
        "new_image": NotRequired[dict[str, Any] | None],
    }
    return forbid(TypedDict(f"{name}Change", fields))  # type: ignore[operator]


_ANY_CHANGE: Any = Annotated[
    Union[tuple(_entity_schema(spec) for spec in REGISTRY)],  # noqa: UP007
    Field(discriminator="entity_type"),
]
#: The schema's validator, called directly (the adapter's wrapper adds a call per change).
_SCHEMA: Final = TypeAdapter(_ANY_CHANGE).validator


def wire_change(fields: dict[str, Any]) -> WireChange:
    """``fields`` validated as a change: what it returns is what the payload carries.

    Raises :class:`pydantic.ValidationError` (errors located under the entity
    type, ``RECEIPT_LINE.keys.line_id``) for anything that does not fit.
    """
    return cast("WireChange", _SCHEMA.validate_python(fields))


def _plain(data: dict[str, Any]) -> dict[str, Any]:
    """Keyword arguments of ``Change(...)`` as the schema reads them (keys as a dict)."""
    keys = data.get("keys")
    if isinstance(keys, ChangeKeys):
        return {**data, "keys": keys.model_dump(exclude_none=True)}
    return data


class Change(BaseModel):
    """One entity change taken from one stream record."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    entity_type: EntityName
    event_name: EventName
    keys: ChangeKeys
    changes: dict[str, FieldChange] = Field(default_factory=dict)
    sequence_number: SequenceNumber
    event_id: EventId
    approximate_creation_time: float | None = None
    #: Informational only: the worker applies the table's current state, never an
    #: image. chromasync's producers leave it out; other services may still send it.
    new_image: dict[str, Any] | None = None

    @model_validator(mode="wrap")
    @classmethod
    def _fits_its_entity(cls, data: Any, handler: ModelWrapValidatorHandler[Change]) -> Change:
        # An instance was checked when it was made (the models are frozen); pydantic
        # would run the check again for every batch that holds it.
        if isinstance(data, cls):
            return data
        if isinstance(data, dict):
            data = _SCHEMA.validate_python(_plain(data))
        return handler(data)

    @property
    def spec(self) -> EntitySpec:
        return SPECS_BY_TYPE[self.entity_type]

    @property
    def sequence_int(self) -> int:
        return int(self.sequence_number)

    @property
    def receipt_key(self) -> tuple[str, int]:
        return (self.keys.image_id, self.keys.receipt_id)

    def to_wire(self) -> WireChange:
        """The change as a payload carries it (validated already: it is a ``Change``)."""
        return cast("WireChange", self.model_dump(mode="json"))


def batch_summary(collection: str, batch_id: str, kinds: list[str]) -> str:
    """A short readable line for logs and Flower, never the whole payload."""
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
        kinds = [f"{c.entity_type}:{c.event_name}" for c in self.changes]
        return batch_summary(self.collection, self.batch_id, kinds)


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
