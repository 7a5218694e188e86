"""Dead letters: what could not be applied, with its whole story, in a per-collection SQS queue.

A dead letter written by the worker is a JSON message on
``{prefix}{collection}-dlq`` holding the original payload (only the changes
that failed), the error type and message, the traceback, the number of
attempts, the first and last failure time and the worker. The same queue also
receives, through the main queue's SQS RedrivePolicy, raw Celery messages of
a task whose worker died again and again before acknowledging it; both kinds
are read back by :func:`parse_message` and sent again by ``chromasync dlq
redrive``.
"""

from __future__ import annotations

import base64
import binascii
import json
import socket
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

from chromasync.core.config import Settings
from chromasync.core.resources import queue_url

#: How long a message received for ``list``/``show`` stays hidden while the
#: listing is read (each is made visible again right after).
PEEK_VISIBILITY = 30
#: How long a message being redriven stays hidden until it is deleted.
REDRIVE_VISIBILITY = 60


@dataclass
class DeadLetter:
    collection: str
    payload: Any
    error_type: str
    error: str
    traceback: str
    attempts: int
    first_failure_at: float
    last_failure_at: float
    worker: str = field(default_factory=socket.gethostname)
    task_id: str | None = None
    permanent: bool = False
    #: ``worker`` (written by a worker) or ``redrive-policy`` (moved by SQS).
    source: str = "worker"
    #: The SQS body as received, for a message that could not be run as a task call.
    raw_body: str | None = None

    def to_json(self) -> str:
        return json.dumps(asdict(self), default=str)


@dataclass
class ReceivedLetter:
    """A dead letter as read from its queue, with what is needed to delete it."""

    queue: str
    message_id: str
    receipt_handle: str
    letter: DeadLetter
    sent_at: float


def _celery_payload(body: str) -> tuple[Any, dict[str, Any]] | None:
    """The task payload and headers of a raw Celery-over-SQS message, if it is one."""
    try:
        envelope = json.loads(base64.b64decode(body, validate=True))
        inner = envelope["body"]
        if envelope.get("properties", {}).get("body_encoding") == "base64":
            inner = base64.b64decode(inner)
        args, _kwargs, _embed = json.loads(inner)
        return (args[0] if args else None), dict(envelope.get("headers", {}))
    except (binascii.Error, ValueError, KeyError, TypeError, IndexError):
        return None


def parse_message(collection: str, body: str, received: int) -> DeadLetter:
    """Read either kind of dead letter; an unreadable body is kept as is."""
    try:
        data = json.loads(body)
    except ValueError:
        data = None
    if isinstance(data, dict) and "error_type" in data and "payload" in data:
        fields = DeadLetter.__dataclass_fields__
        return DeadLetter(**{k: v for k, v in data.items() if k in fields})
    raw = _celery_payload(body)
    now = time.time()
    if raw is not None:
        payload, headers = raw
        return DeadLetter(
            collection=collection,
            payload=payload,
            error_type="WorkerLost",
            error=(
                "moved here by the queue's RedrivePolicy after "
                f"{received} receives without an ack (the worker died or hung mid-task)"
            ),
            traceback="",
            attempts=received,
            first_failure_at=now,
            last_failure_at=now,
            worker="unknown",
            task_id=headers.get("id"),
            source="redrive-policy",
        )
    return DeadLetter(
        collection=collection,
        payload=body,
        error_type="UnreadableMessage",
        error="the message is neither a chromasync dead letter nor a Celery task",
        traceback="",
        attempts=received,
        first_failure_at=now,
        last_failure_at=now,
        worker="unknown",
        source="unknown",
    )


#: How long a dead letter is kept: SQS's longest retention, 14 days.
DLQ_RETENTION_SECONDS = 14 * 24 * 3600


def dead_letter_queue_attributes(fifo: bool) -> dict[str, str]:
    """The attributes provisioning creates every dead-letter queue with.

    A FIFO one deduplicates by content: letters carry no deduplication id of
    their own.
    """
    attributes = {"MessageRetentionPeriod": str(DLQ_RETENTION_SECONDS)}
    if fifo:
        attributes.update(FifoQueue="true", ContentBasedDeduplication="true")
    return attributes


class DeadLetterQueues:
    """Writes and reads the dead-letter queues of every collection (made by provisioning)."""

    def __init__(self, settings: Settings, client: Any | None = None) -> None:
        self.settings = settings
        self._client = client
        self._urls: dict[str, str] = {}

    @property
    def client(self) -> Any:
        if self._client is None:
            import boto3

            self._client = boto3.client("sqs", **self.settings.aws.client_kwargs())
        return self._client

    def url(self, collection: str) -> str:
        url = self._urls.get(collection)
        if url is None:
            url = queue_url(self.client, self.settings.dlq_name(collection))
            self._urls[collection] = url
        return url

    def send(self, letter: DeadLetter) -> None:
        kwargs: dict[str, Any] = {
            "QueueUrl": self.url(letter.collection),
            "MessageBody": letter.to_json(),
        }
        if self.settings.fifo:
            kwargs["MessageGroupId"] = letter.collection
        self.client.send_message(**kwargs)

    def receive(
        self, collection: str, limit: int, visibility: int = PEEK_VISIBILITY
    ) -> Iterator[ReceivedLetter]:
        """Up to ``limit`` distinct letters; each stays hidden for ``visibility`` seconds."""
        url = self.url(collection)
        seen: set[str] = set()
        while len(seen) < limit:
            response = self.client.receive_message(
                QueueUrl=url,
                MaxNumberOfMessages=min(10, limit - len(seen)),
                VisibilityTimeout=visibility,
                WaitTimeSeconds=0,
                AttributeNames=["ApproximateReceiveCount", "SentTimestamp"],
            )
            messages = [m for m in response.get("Messages", []) if m["MessageId"] not in seen]
            if not messages:
                return
            for message in messages:
                seen.add(message["MessageId"])
                attrs = message.get("Attributes", {})
                yield ReceivedLetter(
                    queue=self.settings.dlq_name(collection),
                    message_id=message["MessageId"],
                    receipt_handle=message["ReceiptHandle"],
                    letter=parse_message(
                        collection, message["Body"], int(attrs.get("ApproximateReceiveCount", 1))
                    ),
                    sent_at=int(attrs.get("SentTimestamp", 0)) / 1000,
                )

    def peek(self, collection: str, limit: int) -> list[ReceivedLetter]:
        """Read up to ``limit`` letters and make them visible again straight away."""
        letters = list(self.receive(collection, limit, visibility=PEEK_VISIBILITY))
        for letter in letters:
            self.release(collection, letter)
        return letters

    def delete(self, collection: str, received: ReceivedLetter) -> None:
        self.client.delete_message(
            QueueUrl=self.url(collection), ReceiptHandle=received.receipt_handle
        )

    def release(self, collection: str, received: ReceivedLetter) -> None:
        """Make a peeked letter visible again at once."""
        self.client.change_message_visibility(
            QueueUrl=self.url(collection),
            ReceiptHandle=received.receipt_handle,
            VisibilityTimeout=0,
        )


def now() -> float:
    return time.time()
