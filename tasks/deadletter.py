"""Dead letters: what could not be applied, with its whole story, in a per-collection SQS queue.

A dead letter is a JSON message on ``{prefix}{collection}-dlq`` holding the
original payload (only the changes that failed), the error type and message,
the traceback, the number of attempts, the first and last failure time and
the worker. ``chromasync dlq redrive`` sends the payload back as a task.
"""

from __future__ import annotations

import json
import socket
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from producers.config import Settings


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

    def to_json(self) -> str:
        return json.dumps(asdict(self), default=str)

    @classmethod
    def from_json(cls, body: str) -> DeadLetter:
        data = json.loads(body)
        return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})


class DeadLetterQueues:
    """Creates and writes the dead-letter queues of every collection."""

    def __init__(self, settings: Settings, client: Any | None = None) -> None:
        import boto3

        self.settings = settings
        self.client = client or boto3.client("sqs", **settings.aws.client_kwargs())
        self._urls: dict[str, str] = {}

    def url(self, collection: str) -> str:
        url = self._urls.get(collection)
        if url is None:
            name = self.settings.dlq_name(collection)
            attributes = {"MessageRetentionPeriod": str(14 * 24 * 3600)}
            if self.settings.fifo:
                attributes.update(FifoQueue="true", ContentBasedDeduplication="true")
            url = self.client.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]
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


def now() -> float:
    return time.time()
