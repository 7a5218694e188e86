"""What a worker receives but cannot run: dead-lettered at once, with its raw body and the reason.

Celery's consumer, left alone, *acknowledges* a message whose body cannot be
decoded (it is logged and gone), and *rejects* a call of a task it does not
know or in a content type it does not accept; over SQS a rejected message is
handed out again until the queue's RedrivePolicy moves it, ten visibility
timeouts later, labelled "WorkerLost" with no payload. Here each of those
becomes a dead letter written straight away — the SQS body as received, the
reason, the task name when there is one — and only then is the message
acknowledged. If the letter cannot be written the message is rejected, which
leaves it to SQS (delivered again, then moved by the RedrivePolicy): never
acknowledged unless it is kept somewhere.

A call of our own task with arguments that do not fit is caught by the task
itself (:func:`call_error`), since Celery runs it before anything checks the
signature.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from typing import Any

from celery.worker.consumer.consumer import Consumer

from chromasync.core.config import Settings
from tasks.deadletter import DeadLetter, DeadLetterQueues

log = logging.getLogger(__name__)

#: ``error_type`` of a message whose body cannot be decoded.
UNREADABLE = "UnreadableMessage"
#: ``error_type`` of a message that is not a Celery task message at all.
NOT_A_TASK = "NotATaskMessage"
#: ``error_type`` of a call of a task this worker does not run.
UNKNOWN_TASK = "UnknownTask"
#: ``error_type`` of a call Celery refuses (content type not accepted, broken headers).
REFUSED_CALL = "RefusedTaskCall"
#: Keyword arguments the apply task accepts besides its one positional payload.
APPLY_KEYWORDS = frozenset({"history"})


class MalformedTaskCall(TypeError):
    """A call of the apply task whose arguments do not fit it (permanent)."""


def call_error(args: Sequence[Any], kwargs: Mapping[str, Any]) -> str | None:
    """Why a call of ``chromasync.apply_changes`` does not fit it, or None when it does."""
    problems = []
    if len(args) != 1:
        problems.append(f"{len(args)} positional arguments")
    extra = sorted(set(kwargs) - APPLY_KEYWORDS)
    if extra:
        problems.append(f"unexpected keyword arguments {extra}")
    if not problems:
        return None
    return (
        "the task call does not fit chromasync.apply_changes(payload): got "
        + " and ".join(problems)
        + "; send one positional argument, the batch (README, 'The message contract')"
    )


def raw_body(message: Any) -> str:
    """The message as SQS delivered it (its body), else kombu's view of it."""
    sqs_message = (getattr(message, "delivery_info", None) or {}).get("sqs_message") or {}
    body = sqs_message.get("Body")
    if isinstance(body, str):
        return body
    raw = getattr(message, "body", b"")
    return raw.decode("utf-8", "replace") if isinstance(raw, bytes) else repr(raw)


def arrived_on(message: Any, settings: Settings) -> str:
    """The collection whose queue the message came from (the queue SQS names, not the
    routing key its sender wrote); the first collection when it cannot be told."""
    info = getattr(message, "delivery_info", None) or {}
    queue = str(info.get("sqs_queue") or "").rsplit("/", 1)[-1]
    name = queue.removeprefix(settings.queue_prefix).removesuffix(".fifo")
    return name if name in settings.targets else settings.collections[0]


class DeadLetteringConsumer(Consumer):
    """Celery's consumer whose refusals end in the dead-letter queue (see module doc)."""

    _dead_letters: DeadLetterQueues | None = None

    def on_decode_error(self, message: Any, exc: Exception) -> None:
        self._dead_letter(
            message,
            UNREADABLE,
            f"the message body cannot be decoded (content type {message.content_type!r}, "
            f"encoding {message.content_encoding!r}): {exc}",
        )

    def on_unknown_message(self, body: Any, message: Any) -> None:
        self._dead_letter(message, NOT_A_TASK, "the message is not a Celery task message")

    def on_unknown_task(self, body: Any, message: Any, exc: Exception) -> None:
        name = (message.headers or {}).get("task")
        known = sorted(n for n in self.app.tasks if n.startswith("chromasync."))
        self._dead_letter(
            message,
            UNKNOWN_TASK,
            f"task {name!r} is not one this worker runs ({', '.join(known)})",
        )

    def on_invalid_task(self, body: Any, message: Any, exc: Exception) -> None:
        self._dead_letter(
            message,
            REFUSED_CALL,
            f"the task call was refused ({type(exc).__name__}: {exc}); content type "
            f"{message.content_type!r}, accepted: {sorted(self.app.conf.accept_content)}",
        )

    def _queues(self) -> DeadLetterQueues:
        if self._dead_letters is None:
            self._dead_letters = DeadLetterQueues(Settings.from_env())
        return self._dead_letters

    def _dead_letter(self, message: Any, error_type: str, error: str) -> None:
        headers = message.headers or {}
        try:
            queues = self._queues()
            now = time.time()
            letter = DeadLetter(
                collection=arrived_on(message, queues.settings),
                payload=None,
                error_type=error_type,
                error=error,
                traceback="",
                attempts=1,
                first_failure_at=now,
                last_failure_at=now,
                worker=self.hostname or "unknown",
                task_id=headers.get("id"),
                permanent=True,
                raw_body=raw_body(message),
            )
            queues.send(letter)
        except Exception:
            log.exception(
                "could not dead-letter a refused message (%s: %s); left to SQS, which "
                "delivers it again and moves it with the queue's RedrivePolicy",
                error_type,
                error,
            )
            message.reject_log_error(log, self.connection_errors)
            return
        log.error("dead-lettered a message this worker cannot run: %s: %s", error_type, error)
        message.ack_log_error(log, self.connection_errors)
