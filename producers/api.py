"""The Python API for other services: enqueue changes (or raw stream records) for the workers.

::

    import producers

    producers.enqueue([{"entity_type": "RECEIPT_LINE", "event_name": "MODIFY",
                        "keys": {"image_id": "abc", "receipt_id": 1, "line_id": 3},
                        "sequence_number": "0", "event_id": "billing-42"}])

Each change is validated with the contract (:class:`chromasync.core.contract.Change`),
routed to the collections its entity affects (or to the one given), packed and
published exactly as the stream's changes are, with the process's Publisher
(built once from the environment, see :mod:`producers.defaults`).

Every failure is an :class:`~producers.errors.EnqueueError` (see
:mod:`producers.errors`): a caller catches one family and tells input,
deployment and broker trouble apart by subclass.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

from pydantic import ValidationError

from chromasync.core.config import ConfigError
from chromasync.core.contract import Change, validation_reasons
from chromasync.core.resources import DeploymentError
from chromasync.core.routing import all_targets_of
from producers import defaults
from producers.errors import (
    ChangeTooLarge,
    InvalidChange,
    NotConfigured,
    NotDeployed,
    PublishError,
    PublishFailed,
)
from producers.packing import Routed, pack, sized
from producers.pipeline import ProcessReport
from producers.publishing import Published, Publisher

#: ``producer`` recorded in batches sent through this API.
DEFAULT_PRODUCER = "chromasync.api"


def _each(changes: Any) -> Iterator[Any]:
    """The changes one by one; :class:`InvalidChange` when ``changes`` is not a collection of them.

    A lone change (a mapping or a :class:`Change`) is refused rather than
    iterated: iterating a dict would yield its keys, and the error would then
    talk about strings instead of the real mistake.
    """
    if isinstance(changes, Mapping | Change):
        raise InvalidChange("changes must be a list of changes, got one change: pass [change]")
    if isinstance(changes, str | bytes) or not isinstance(changes, Iterable):
        raise InvalidChange(
            f"changes must be a list of changes (dicts or Change), got {type(changes).__name__}"
        )
    return iter(changes)


def _validated(changes: Any) -> list[Change]:
    out: list[Change] = []
    for index, change in enumerate(_each(changes)):
        if isinstance(change, Change):
            out.append(change)
            continue
        try:
            out.append(Change.model_validate(change))
        except ValidationError as exc:
            reasons = validation_reasons(exc)
            raise InvalidChange(f"change {index} does not fit the contract: {reasons}") from None
    return out


def _publisher() -> Publisher:
    try:
        return defaults.publisher()
    except ConfigError as exc:
        raise NotConfigured(str(exc)) from exc


def enqueue(
    changes: Iterable[Change | Mapping[str, Any]],
    collection: str | None = None,
    *,
    publisher: Publisher | None = None,
    producer: str = DEFAULT_PRODUCER,
) -> list[Published]:
    """Publish ``changes`` as tasks; return what was sent, one entry per task.

    ``collection`` sends every change to that one target instead of the
    targets its entity goes to (the collections its entity affects, and the
    other sinks of ``CHROMASYNC_SINKS`` that take it); it must be one of
    ``CHROMASYNC_COLLECTIONS`` or a sink's target (no worker reads any other queue).

    Raises an :class:`~producers.errors.EnqueueError`, always:

    - :class:`InvalidChange` before sending anything when ``changes`` is not a
      list of changes, a change does not validate or ``collection`` is unknown;
      :class:`ChangeTooLarge` (an ``InvalidChange``) when one change cannot fit
      in a task message even without its image and values;
    - :class:`NotConfigured` before sending anything when a setting is wrong;
    - :class:`NotDeployed` when a queue does not exist or may not be sent to,
      and :class:`PublishFailed` (a :class:`~producers.errors.PublishError`)
      when a batch could not be published after the publisher's retries; both
      carry ``published`` (the tasks sent before) and ``unsent_changes``.
    """
    valid = _validated(changes)
    publisher = publisher or _publisher()
    settings = publisher.settings
    if collection is not None and collection not in settings.targets:
        raise InvalidChange(
            f"collection {collection!r} is not one of CHROMASYNC_COLLECTIONS or CHROMASYNC_SINKS "
            f"({', '.join(settings.targets)})"
        )
    routed: list[Routed] = []
    for index, change in enumerate(valid):
        try:
            wire, size = sized(change.to_wire())
        except ChangeTooLarge as exc:
            raise ChangeTooLarge(f"change {index}: {exc}") from None
        if collection is not None:
            routed.append(Routed(collection, wire, size))
            continue
        for target in all_targets_of(settings, change.entity_type):
            routed.append(Routed(target, wire, size))
    batches = pack(
        routed, settings.max_changes_per_task, producer=producer, per_receipt=settings.fifo
    )
    published: list[Published] = []
    for position, batch in enumerate(batches):
        try:
            published.append(publisher.publish(batch))
        except (PublishError, DeploymentError) as exc:
            unsent = sum(len(b.changes) for b in batches[position:])
            failure = PublishFailed if isinstance(exc, PublishError) else NotDeployed
            raise failure(str(exc), published, unsent) from exc
    return published


def enqueue_records(records: Sequence[Any], *, source: str = "api") -> ProcessReport:
    """Handle raw DynamoDB stream records (either shape) exactly as the Lambda handler does.

    The report accounts for every record; ``report.failed_from`` is set when
    some could not be published (``report.error`` says why): publish failures
    are reported there, per record, not raised. Raises :class:`InvalidChange`
    when ``records`` is not a list, :class:`NotConfigured` for a wrong setting
    and :class:`NotDeployed` for a missing or forbidden queue (``unsent_changes``
    None: which records went out is not known then; send them again once it is
    fixed, duplicates are harmless).
    """
    if isinstance(records, str | bytes | Mapping) or not isinstance(records, Sequence):
        raise InvalidChange(
            f"records must be a list of stream records, got {type(records).__name__}"
        )
    try:
        processor = defaults.processor(source)
    except ConfigError as exc:
        raise NotConfigured(str(exc)) from exc
    try:
        return processor.process(records)
    except DeploymentError as exc:
        raise NotDeployed(str(exc), (), None) from exc
