"""The message contract between producers and the worker (``schema_version`` 1).

One task message carries a batch of changes for one collection. Both sides
validate it with these models: the producer before it publishes, the worker
before it applies anything, so a payload from another service that does not
fit is rejected whole (into the dead-letter queue), never half-applied.

Services that only have Celery's ``send_task`` send::

    app.send_task(APPLY_TASK_NAME, args=[payload], queue="<collection>")

where ``payload`` is ``ChangeBatch(...).model_dump(mode="json")``.
"""

from __future__ import annotations

import base64
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated, Any, Literal, NotRequired

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ModelWrapValidatorHandler,
    StringConstraints,
    ValidationError,
    model_validator,
    with_config,
)
from typing_extensions import TypedDict

from producers.entities import SPECS_BY_TYPE, EntityType

#: Version of the payload layout; the worker refuses any other.
SCHEMA_VERSION: Literal[1] = 1
#: Celery task name of the worker's batch task.
APPLY_TASK_NAME = "chromasync.apply_changes"

EventName = Literal["INSERT", "MODIFY", "REMOVE"]
SequenceNumber = Annotated[str, StringConstraints(pattern=r"^\d{1,40}$")]


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

    image_id: Annotated[str, StringConstraints(min_length=1, pattern=r"^[^#]+$")]
    receipt_id: int = Field(ge=0, le=99999)
    line_id: int | None = Field(default=None, ge=0, le=99999)
    word_id: int | None = Field(default=None, ge=0, le=99999)
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
    event_id: Annotated[str, StringConstraints(min_length=1, max_length=256)]
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


class ChangeBatch(BaseModel):
    """One task's payload: changes for exactly one collection."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    schema_version: Literal[1] = SCHEMA_VERSION
    batch_id: str = Field(default_factory=lambda: uuid.uuid4().hex)
    collection: Annotated[str, StringConstraints(min_length=1, pattern=r"^[A-Za-z0-9_-]+$")]
    changes: list[Change] = Field(min_length=1)
    produced_at: datetime = Field(default_factory=lambda: datetime.now(UTC))
    producer: str = "chromasync"

    def to_payload(self) -> dict[str, Any]:
        return self.model_dump(mode="json")

    def summary(self) -> str:
        """A short readable line for logs and Flower, never the whole payload."""
        kinds: dict[str, int] = {}
        for change in self.changes:
            label = f"{change.entity_type.value}:{change.event_name}"
            kinds[label] = kinds.get(label, 0) + 1
        parts = ", ".join(f"{k}x{v}" for k, v in sorted(kinds.items()))
        return f"{self.collection} batch {self.batch_id[:8]}: {len(self.changes)} changes ({parts})"


class BatchEnvelope(BaseModel):
    """A payload's own fields, with its changes not yet validated one by one."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    schema_version: Literal[1]
    batch_id: str = Field(default_factory=lambda: uuid.uuid4().hex)
    collection: Annotated[str, StringConstraints(min_length=1, pattern=r"^[A-Za-z0-9_-]+$")]
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
