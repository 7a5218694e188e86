"""The compaction task: apply one batch of changes to one collection, retry, or dead-letter.

Acks are late (``celeryconfig``): the message is acknowledged only after
this function returns, that is after the Chroma write returned, or after
the failed part was re-sent (retry) or written to the dead-letter queue.
"""

from __future__ import annotations

import logging
import traceback
from dataclasses import asdict, dataclass
from typing import Any

from celery import Task
from pydantic import ValidationError

from producers.contract import APPLY_TASK_NAME, ChangeBatch
from producers.publishing import backoff_delay
from tasks.app import app
from tasks.deadletter import DeadLetter, now
from tasks.errors import EmbeddingMissing, is_transient
from tasks.runtime import WorkerRuntime, get_runtime, subset

log = logging.getLogger(__name__)


@dataclass
class FailureHistory:
    """Travels with a retried task so its dead letter can tell the whole story."""

    attempts: int = 0
    first_failure_at: float | None = None
    last_error: str | None = None

    @classmethod
    def from_dict(cls, raw: Any) -> FailureHistory:
        if not isinstance(raw, dict):
            return cls()
        return cls(
            attempts=int(raw.get("attempts", 0)),
            first_failure_at=raw.get("first_failure_at"),
            last_error=raw.get("last_error"),
        )

    def failed(self, exc: BaseException) -> FailureHistory:
        return FailureHistory(
            attempts=self.attempts + 1,
            first_failure_at=self.first_failure_at or now(),
            last_error=f"{type(exc).__name__}: {exc}",
        )


def _collection_of(payload: Any) -> str:
    if isinstance(payload, dict) and isinstance(payload.get("collection"), str):
        return payload["collection"]
    return "unknown"


def dead_letter(
    task: Task,
    runtime: WorkerRuntime,
    collection: str,
    payload: Any,
    exc: BaseException,
    history: FailureHistory,
    permanent: bool,
) -> None:
    history = history.failed(exc)
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
    log.error(
        "dead-lettered %s payload after %d attempts: %s: %s",
        collection,
        history.attempts,
        letter.error_type,
        letter.error,
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
    waited = now() - (history.first_failure_at or now())
    over_time = isinstance(exc, EmbeddingMissing) and waited >= s.missing_embedding_timeout
    if history.attempts >= s.max_retries and not isinstance(exc, EmbeddingMissing) or over_time:
        dead_letter(task, runtime, batch.collection, payload, exc, history, permanent=False)
        return
    next_history = history.failed(exc)
    delay = backoff_delay(history.attempts, s.retry_backoff_base, s.retry_backoff_max)
    options: dict[str, Any] = {"queue": s.shared.queue_for(batch.collection)}
    if s.shared.fifo:
        first = batch.changes[0].keys
        options["MessageGroupId"] = f"{first.image_id}#{first.receipt_id:05d}"
    log.warning(
        "retrying %d changes of %s in %.1fs (attempt %d): %s",
        len(payload["changes"]),
        batch.batch_id,
        delay,
        next_history.attempts,
        exc,
    )
    task.apply_async(
        args=[payload], kwargs={"history": asdict(next_history)}, countdown=delay, **options
    )


@app.task(bind=True, name=APPLY_TASK_NAME)
def apply_changes(self: Task, payload: Any, history: Any = None) -> dict[str, Any]:
    runtime = get_runtime()
    past = FailureHistory.from_dict(history)
    try:
        batch = ChangeBatch.model_validate(payload)
        runtime.role(batch.collection)
    except (ValidationError, ValueError) as exc:
        dead_letter(self, runtime, _collection_of(payload), payload, exc, past, permanent=True)
        return {"status": "rejected", "error": str(exc)[:500]}
    try:
        outcome = runtime.apply_batch(batch)
    except Exception as exc:
        if not is_transient(exc):
            raise
        retry(self, runtime, batch, batch.to_payload(), exc, past)
        return {"status": "retrying", "error": f"{type(exc).__name__}: {exc}"}
    for index, error in outcome.failed.items():
        dead_letter(
            self, runtime, batch.collection, subset(batch, [index]), error, past, permanent=True
        )
    if outcome.waiting:
        missing = EmbeddingMissing(
            f"{len(outcome.result.missing)} embeddings not in {batch.collection} yet "
            f"(e.g. {sorted(outcome.result.missing)[:3]}); waiting for their delta"
        )
        retry(self, runtime, batch, subset(batch, outcome.waiting), missing, past)
    return {
        "status": "applied",
        "collection": batch.collection,
        "changes": len(batch.changes),
        "applied": outcome.applied,
        "waiting": len(outcome.waiting),
        "failed": len(outcome.failed),
        "updated": outcome.result.updated,
        "deleted": outcome.result.deleted,
        "fence": outcome.fence,
    }
