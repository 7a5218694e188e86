"""The compaction task: apply one batch of changes to one collection, retry, or dead-letter.

Acks are late (``celeryconfig``): the message is acknowledged only after
this function returns, that is after the Chroma write returned, or after
the failed part was re-sent (retry) or written to the dead-letter queue.

A retry is a new message, delayed by SQS (``DelaySeconds``) rather than held
by a worker with a Celery countdown: a held message stays received, and once
its visibility timeout passes SQS hands it out again — one change became
several identical dead letters that way.
"""

from __future__ import annotations

import logging
import math
import time
import traceback
from dataclasses import asdict
from typing import Any

from celery import Task
from pydantic import ValidationError

from chromasync.core.backoff import backoff_delay
from chromasync.core.config import UnknownCollection
from chromasync.core.contract import APPLY_TASK_NAME, ChangeBatch, validate_payload
from chromasync.core.groups import receipt_group
from chromasync.core.logs import change_fields, set_log_context
from tasks.app import app
from tasks.deadletter import DeadLetter, now
from tasks.errors import ContractViolation, EmbeddingMissing, is_transient
from tasks.history import FailureHistory
from tasks.intake import MalformedTaskCall, call_error
from tasks.metrics import recording as metrics
from tasks.progress import recording as progress
from tasks.runtime import WorkerRuntime, get_runtime, subset

log = logging.getLogger(__name__)


def _collection_of(task: Task, runtime: WorkerRuntime, payload: Any) -> str:
    """Where a payload's dead letter goes: its target, else the queue it came from."""
    collections = runtime.settings.shared.targets
    if isinstance(payload, dict) and payload.get("collection") in collections:
        return str(payload["collection"])
    routing_key = str((task.request.delivery_info or {}).get("routing_key") or "")
    queue = routing_key.removesuffix(".fifo")
    return queue if queue in collections else collections[0]


def _batch_id(payload: Any) -> str | None:
    """The batch id a payload claims, for log context (None when it has none)."""
    value = payload.get("batch_id") if isinstance(payload, dict) else None
    return value[:64] if isinstance(value, str) else None


def dead_letter(
    task: Task,
    runtime: WorkerRuntime,
    collection: str,
    payload: Any,
    exc: BaseException,
    history: FailureHistory,
    permanent: bool,
) -> None:
    history = history.failed(exc, now())
    letter = DeadLetter(
        collection=collection,
        payload=payload,
        error_type=type(exc).__name__,
        error=str(exc),
        traceback="".join(traceback.format_exception(exc)),
        attempts=history.attempts,
        first_failure_at=history.first_failure_at or now(),
        last_failure_at=now(),
        worker=task.request.hostname or "unknown",
        task_id=task.request.id,
        permanent=permanent,
    )
    runtime.dead_letters.send(letter)
    metrics.changes_dead_lettered(collection, payload, exc)
    log.error(
        "dead-lettered %s payload after %d attempts: %s: %s",
        collection,
        history.attempts,
        letter.error_type,
        letter.error,
        extra=change_fields(payload),
    )


def retry(
    task: Task,
    runtime: WorkerRuntime,
    batch: ChangeBatch,
    payload: dict[str, Any],
    exc: BaseException,
    history: FailureHistory,
) -> None:
    """Send the payload back with backoff, or dead-letter it past the limits."""
    s = runtime.settings
    at = now()
    if history.exhausted(exc, at, s.max_retries, s.missing_embedding_timeout):
        dead_letter(task, runtime, batch.collection, payload, exc, history, permanent=False)
        return
    next_history = history.failed(exc, at)
    delay = backoff_delay(history.attempts, s.retry_backoff_base, s.retry_backoff_max)
    options: dict[str, Any] = {"queue": s.shared.queue_for(batch.collection)}
    if s.shared.fifo:
        # Over SQS a Celery retry drops MessageGroupId unless it is passed again.
        first = batch.changes[0].keys
        options["MessageGroupId"] = receipt_group(first.image_id, first.receipt_id)
        # A FIFO queue takes no per-message delay: a worker holds the retry until its
        # countdown, which WorkerSettings keeps below the visibility timeout.
        options["countdown"] = delay
    else:
        # SQS holds the retry (DelaySeconds), not a worker: it is received only when due,
        # so it can never outlive its visibility timeout and be handed out twice.
        options["delay_seconds"] = math.ceil(delay)
    log.warning(
        "retrying %d changes of %s in %.1fs (attempt %d): %s",
        len(payload["changes"]),
        batch.batch_id,
        delay,
        next_history.attempts,
        exc,
        extra=change_fields(payload),
    )
    task.apply_async(
        args=[payload],
        kwargs={"history": asdict(next_history)},
        # What Flower shows: a summary, never the payload (it may be a subset of the batch).
        argsrepr=repr([ChangeBatch.model_validate(payload).summary()]),
        **options,
    )
    metrics.changes_retried(batch.collection, payload, exc)


@app.task(bind=True, name=APPLY_TASK_NAME)
def apply_changes(self: Task, *args: Any, **kwargs: Any) -> dict[str, Any]:
    """Apply one batch; every outcome is applied, retried or dead-lettered before the ack.

    The call is ``apply_changes(payload)`` (and ``history=`` on a retry). It takes
    any arguments so that a call that does not fit — another service's mistake —
    is dead-lettered with the reason at once instead of failing in Celery before
    this runs, which left the message to be redelivered until the RedrivePolicy.

    Only when the worker's runtime cannot be built (its lock store, Chroma or
    the table unreachable, a wrong setting) or even the dead-letter queue cannot
    be written does an error escape: the message is then not acknowledged
    (``task_acks_on_failure`` is off), SQS delivers it again after the
    visibility timeout, and the queue's RedrivePolicy moves it to the
    dead-letter queue after too many receives. The worker's log says why.
    """
    payload: Any = args[0] if args else None
    try:
        runtime = get_runtime()
        collection = _collection_of(self, runtime, payload)
        runtime.sink_for(collection)  # built on first use: Chroma, the dashboard table...
    except Exception as exc:
        log.error(
            "cannot apply batch %s: the worker runtime cannot be built (%s: %s); the message "
            "stays unacknowledged and comes back after the visibility timeout",
            _batch_id(payload),
            type(exc).__name__,
            exc,
        )
        raise
    misfit = call_error(args, kwargs)
    if misfit is not None:
        call = MalformedTaskCall(f"{misfit}; keyword arguments: {sorted(kwargs)}")
        dead_letter(self, runtime, collection, payload, call, FailureHistory(), permanent=True)
        return {"status": "rejected", "error": misfit}
    past = FailureHistory.from_dict(kwargs.get("history"))
    set_log_context(collection=collection, batch_id=_batch_id(payload))
    metrics.changes_received(collection, payload)
    try:
        batch, rejected = validate_payload(payload)
        if batch is not None:
            runtime.settings.shared.sink_of(batch.collection)
    except (ValidationError, UnknownCollection) as exc:
        dead_letter(self, runtime, collection, payload, exc, past, permanent=True)
        return {"status": "rejected", "error": str(exc)[:500]}
    for bad in rejected:
        single = {**payload, "changes": [bad.change]}
        error = ContractViolation(
            f"change {bad.index} of batch {payload.get('batch_id')}: {bad.error}"
        )
        dead_letter(self, runtime, collection, single, error, past, permanent=True)
    if batch is None:
        return {"status": "rejected", "error": "no valid change in the batch"}
    started = time.monotonic()
    try:
        outcome = runtime.apply_batch(batch)
    except Exception as exc:
        if is_transient(exc):
            retry(self, runtime, batch, batch.to_payload(), exc, past)
            return {"status": "retrying", "error": f"{type(exc).__name__}: {exc}"}
        dead_letter(self, runtime, batch.collection, batch.to_payload(), exc, past, False)
        return {"status": "dead-lettered", "error": f"{type(exc).__name__}: {exc}"}
    metrics.batch_applied(batch, outcome, time.monotonic() - started)
    progress.batch_applied(runtime.settings, batch, outcome)
    for index, failure in outcome.failed.items():
        dead_letter(
            self, runtime, batch.collection, subset(batch, [index]), failure, past, permanent=True
        )
    if outcome.waiting:
        result = outcome.result
        parts = []
        if result.missing:
            parts.append(
                f"{len(result.missing)} embeddings not in {batch.collection} yet "
                f"(e.g. {sorted(result.missing)[:3]}); waiting for their delta"
            )
        if result.deltas_not_ready:
            parts.append(f"{len(result.deltas_not_ready)} runs' deltas not in S3 yet")
        parts.extend(result.waits)
        missing = EmbeddingMissing("; ".join(parts))
        retry(self, runtime, batch, subset(batch, outcome.waiting), missing, past)
    return {
        "status": "applied",
        "collection": batch.collection,
        "changes": len(batch.changes),
        "rejected": len(rejected),
        "applied": outcome.applied,
        "waiting": len(outcome.waiting),
        "failed": len(outcome.failed),
        "updated": outcome.result.updated,
        "deleted": outcome.result.deleted,
        "superseded": outcome.result.superseded,
        "fence": outcome.fence,
    }
