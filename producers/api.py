"""The Python API for other services: enqueue changes (or raw stream records) for the workers.

::

    import producers

    producers.enqueue([{"entity_type": "RECEIPT_LINE", "event_name": "MODIFY",
                        "keys": {"image_id": "abc", "receipt_id": 1, "line_id": 3},
                        "sequence_number": "0", "event_id": "billing-42"}])

Each change is validated with the contract (:class:`producers.contract.Change`),
routed to the collections its entity affects (or to the one given), packed and
published exactly as the stream's changes are, with the process's Publisher
(built once from the environment, see :mod:`producers.defaults`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from pydantic import ValidationError

from producers import defaults
from producers.contract import Change, validation_reasons
from producers.entities import SPECS_BY_TYPE
from producers.packing import Routed, pack, sized
from producers.pipeline import ProcessReport, collection_for
from producers.publishing import Published, Publisher, PublishError

#: ``producer`` recorded in batches sent through this API.
DEFAULT_PRODUCER = "chromasync.api"


class InvalidChange(ValueError):
    """A change given to :func:`enqueue` does not fit the contract; says which and why."""


class EnqueueError(PublishError):
    """Some batches could not be published; ``published`` lists those that were."""

    def __init__(self, message: str, published: list[Published], unsent_changes: int) -> None:
        super().__init__(message)
        self.published = published
        self.unsent_changes = unsent_changes


def _validated(changes: Iterable[Change | Mapping[str, Any]]) -> list[Change]:
    out: list[Change] = []
    for index, change in enumerate(changes):
        if isinstance(change, Change):
            out.append(change)
            continue
        try:
            out.append(Change.model_validate(change))
        except ValidationError as exc:
            reasons = validation_reasons(exc)
            raise InvalidChange(f"change {index} does not fit the contract: {reasons}") from None
    return out


def enqueue(
    changes: Iterable[Change | Mapping[str, Any]],
    collection: str | None = None,
    *,
    publisher: Publisher | None = None,
    producer: str = DEFAULT_PRODUCER,
) -> list[Published]:
    """Publish ``changes`` as tasks; return what was sent, one entry per task.

    ``collection`` sends every change to that one collection instead of the
    collections its entity affects; it must be one of ``CHROMASYNC_COLLECTIONS``
    (no worker reads any other queue). Raises :class:`InvalidChange` before
    sending anything when a change does not validate, and :class:`EnqueueError`
    (a :class:`~producers.publishing.PublishError`) when a batch could not be
    published after the publisher's retries.
    """
    valid = _validated(changes)
    publisher = publisher or defaults.publisher()
    settings = publisher.settings
    if collection is not None and collection not in settings.collections:
        raise ValueError(
            f"collection {collection!r} is not one of CHROMASYNC_COLLECTIONS "
            f"({', '.join(settings.collections)})"
        )
    routed: list[Routed] = []
    for change in valid:
        wire, size = sized(change.to_wire())
        if collection is not None:
            routed.append(Routed(collection, wire, size))
            continue
        for role in SPECS_BY_TYPE[change.entity_type].roles:
            routed.append(Routed(collection_for(settings, role), wire, size))
    batches = pack(
        routed, settings.max_changes_per_task, producer=producer, per_receipt=settings.fifo
    )
    published: list[Published] = []
    for position, batch in enumerate(batches):
        try:
            published.append(publisher.publish(batch))
        except PublishError as exc:
            unsent = sum(len(b.changes) for b in batches[position:])
            raise EnqueueError(str(exc), published, unsent) from exc
    return published


def enqueue_records(records: Sequence[Any], *, source: str = "api") -> ProcessReport:
    """Handle raw DynamoDB stream records (either shape) exactly as the Lambda handler does.

    The report accounts for every record; ``report.failed_from`` is set when
    some could not be published (``report.error`` says why).
    """
    return defaults.processor(source).process(records)
