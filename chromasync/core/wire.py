"""The wire form of changes: what the producer builds, validates and sends.

The producer does not make a :class:`~chromasync.core.contract.Change` per
record: it builds each change as the JSON-ready dict it sends and validates
that dict against the contract's schema in one call
(:func:`chromasync.core.contract.wire_change`). The worker validates what it
receives with ``Change``, which runs the same schema.
"""

from __future__ import annotations

import base64
import re
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Final, NotRequired

from typing_extensions import TypedDict

from chromasync.core.contract import (
    COLLECTION_CHARS,
    SCHEMA_VERSION,
    EventName,
    FieldChange,
    batch_summary,
)

if TYPE_CHECKING:
    from chromasync.core.contract import ChangeBatch

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


_COLLECTION_NAME: Final = re.compile(COLLECTION_CHARS)


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
            raise ValueError(f"collection name {self.collection!r} is not {COLLECTION_CHARS}")
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
        return batch_summary(self.collection, self.batch_id, kinds)
