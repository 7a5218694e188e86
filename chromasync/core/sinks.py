"""The sinks the pipeline can feed, and which changes each one takes, as data.

A *sink* is a kind of store kept in step with the table (Chroma, the
receipts dashboard table); a *target* is one of its parts with its own
queue, lock and dead-letter queue (a Chroma collection, the dashboard
table). ``CHROMASYNC_SINKS`` turns sinks on; the producer routes each change
to the targets of every sink turned on that takes it.

Routing must be known to the producer, which ships as a small Lambda zip
without the worker code, so it lives here as data: a sink's implementation
(``tasks/sinks/<name>.py``) is worker code, its entry in :data:`SINKS` is
what the producer needs. Adding a sink is that module plus one entry here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from chromasync.core.entities import EntityType

#: The events that matter to a sink for any item it watches (its MODIFYs matter
#: only when a watched field changes).
ITEM_EVENTS: Final = frozenset({"INSERT", "REMOVE"})


@dataclass(frozen=True)
class Watch:
    """What of one entity a sink cares about."""

    #: Fields whose change in a MODIFY matters to the sink.
    fields: tuple[str, ...] = ()
    #: Events that matter whatever changed.
    events: frozenset[str] = ITEM_EVENTS


@dataclass(frozen=True)
class SinkSpec:
    """One sink as the producer and the operator commands see it."""

    #: Its name in ``CHROMASYNC_SINKS`` (and the module ``tasks/sinks/<name>.py``).
    name: str
    #: The entities it takes and what of them matters. ``None`` for the Chroma
    #: sink, whose routing is the entity registry itself (each entity's roles
    #: and monitored fields, :mod:`chromasync.core.entities`).
    watches: Mapping[str, Watch] | None
    #: One line for ``--help`` and the docs.
    summary: str


#: The Chroma sink's name; its targets are the ``CHROMASYNC_COLLECTIONS``.
CHROMA: Final = "chroma"
#: The receipts dashboard's name, which is also its one target's (queue ``dashboard``).
DASHBOARD: Final = "dashboard"

#: Every sink chromasync can feed, by name.
SINKS: Final[dict[str, SinkSpec]] = {
    CHROMA: SinkSpec(
        CHROMA,
        None,
        "the lines and words Chroma collections (embedding metadata)",
    ),
    DASHBOARD: SinkSpec(
        DASHBOARD,
        {
            EntityType.RECEIPT: Watch(("timestamp_added",)),
            EntityType.RECEIPT_METADATA: Watch(("canonical_merchant_name", "merchant_name")),
            EntityType.RECEIPT_LINE: Watch(),
            EntityType.RECEIPT_WORD: Watch(("text",)),
            EntityType.RECEIPT_WORD_LABEL: Watch(("label", "validation_status")),
        },
        "the receipts dashboard: a DynamoDB table of one item per receipt and per label",
    ),
}

#: What ``CHROMASYNC_SINKS`` is when unset.
DEFAULT_SINKS: Final = (CHROMA,)
