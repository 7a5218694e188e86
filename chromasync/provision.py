"""Creating what the pipeline needs in AWS (or moto): queues with dead-letter queues, the table.

Every collection gets its main queue with an SQS RedrivePolicy onto its
dead-letter queue: the safety net for a worker that dies mid-task again and
again (the worker itself dead-letters what it cannot apply, with details).
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass
from typing import Any

from producers.config import Settings

#: Receives of one message before SQS moves it to the dead-letter queue.
MAX_RECEIVE_COUNT = 10
#: Largest task message, bytes: the 256 KiB the producer packs for
#: (producers.packing). SQS and moto now default to 1 MiB; setting it on the
#: queue makes a message over our limit fail loudly, locally too.
MAX_MESSAGE_BYTES = 262_144


def ensure_queues(settings: Settings, client: Any | None = None) -> dict[str, str]:
    """Create each collection's queue and dead-letter queue; return name → URL.

    The visibility timeout is ``CHROMASYNC_VISIBILITY_TIMEOUT`` (the same value
    the workers' kombu transport uses), set on the queue itself: SQS hides a
    received message for the *queue's* timeout.
    """
    visibility_timeout = settings.visibility_timeout
    import boto3

    from tasks.deadletter import dead_letter_queue_attributes

    sqs = client or boto3.client("sqs", **settings.aws.client_kwargs())
    urls: dict[str, str] = {}
    for collection in settings.collections:
        dlq_name = settings.dlq_name(collection)
        fifo: dict[str, str] = {"FifoQueue": "true"} if settings.fifo else {}
        dlq_url = sqs.create_queue(
            QueueName=dlq_name, Attributes=dead_letter_queue_attributes(settings.fifo)
        )["QueueUrl"]
        dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])[
            "Attributes"
        ]["QueueArn"]
        name = settings.sqs_queue_name(collection)
        url = sqs.create_queue(
            QueueName=name,
            Attributes={
                "VisibilityTimeout": str(visibility_timeout),
                "MaximumMessageSize": str(MAX_MESSAGE_BYTES),
                "RedrivePolicy": json.dumps(
                    {"deadLetterTargetArn": dlq_arn, "maxReceiveCount": MAX_RECEIVE_COUNT}
                ),
                **fifo,
            },
        )["QueueUrl"]
        urls[name] = url
        urls[dlq_name] = dlq_url
    return urls


def ensure_table(settings: Settings, client: Any | None = None) -> str:
    """Create the receipts table with a NEW_AND_OLD_IMAGES stream; return the stream ARN."""
    import boto3

    dynamodb = client or boto3.client("dynamodb", **settings.aws.client_kwargs())
    with contextlib.suppress(dynamodb.exceptions.ResourceInUseException):
        dynamodb.create_table(
            TableName=settings.table,
            KeySchema=[
                {"AttributeName": "PK", "KeyType": "HASH"},
                {"AttributeName": "SK", "KeyType": "RANGE"},
            ],
            AttributeDefinitions=[
                {"AttributeName": "PK", "AttributeType": "S"},
                {"AttributeName": "SK", "AttributeType": "S"},
            ],
            BillingMode="PAY_PER_REQUEST",
            StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
        )
    table = dynamodb.describe_table(TableName=settings.table)["Table"]
    return str(table["LatestStreamArn"])


@dataclass(frozen=True)
class QueueDepth:
    """One queue's message counts, from its SQS attributes (approximate, as SQS says)."""

    name: str
    collection: str | None
    #: ``queue``, ``dead_letter`` or ``quarantine``.
    kind: str
    exists: bool
    visible: int = 0
    in_flight: int = 0
    delayed: int = 0

    @property
    def empty(self) -> bool:
        """No message waiting, received or delayed (a queue not created holds none)."""
        return self.visible == self.in_flight == self.delayed == 0


def queue_names(settings: Settings) -> list[tuple[str, str | None, str]]:
    """(name, collection, kind) of every queue the system uses, the quarantine last."""
    from producers.quarantine import Quarantine

    names: list[tuple[str, str | None, str]] = []
    for collection in settings.collections:
        names.append((settings.sqs_queue_name(collection), collection, "queue"))
    for collection in settings.collections:
        names.append((settings.dlq_name(collection), collection, "dead_letter"))
    names.append((Quarantine(settings).queue_name, None, "quarantine"))
    return names


def queue_depths(settings: Settings, client: Any | None = None) -> list[QueueDepth]:
    """Depth of every queue from its SQS attributes; a queue not created yet says so."""
    import boto3
    from botocore.exceptions import ClientError

    from tasks.errors import MISSING_QUEUE_CODES, aws_error_code

    sqs = client or boto3.client("sqs", **settings.aws.client_kwargs())
    depths = []
    for name, collection, kind in queue_names(settings):
        try:
            url = sqs.get_queue_url(QueueName=name)["QueueUrl"]
            attrs = sqs.get_queue_attributes(
                QueueUrl=url,
                AttributeNames=[
                    "ApproximateNumberOfMessages",
                    "ApproximateNumberOfMessagesNotVisible",
                    "ApproximateNumberOfMessagesDelayed",
                ],
            )["Attributes"]
        except ClientError as exc:
            if aws_error_code(exc) in MISSING_QUEUE_CODES:
                depths.append(QueueDepth(name, collection, kind, exists=False))
                continue
            raise
        depths.append(
            QueueDepth(
                name,
                collection,
                kind,
                exists=True,
                visible=int(attrs.get("ApproximateNumberOfMessages", 0)),
                in_flight=int(attrs.get("ApproximateNumberOfMessagesNotVisible", 0)),
                delayed=int(attrs.get("ApproximateNumberOfMessagesDelayed", 0)),
            )
        )
    return depths


def queues_empty(
    settings: Settings, client: Any | None = None, include_dead_letters: bool = False
) -> bool:
    """Every collection's task queue (and, if asked, its dead-letter queue) is empty."""
    kinds = {"queue", "dead_letter"} if include_dead_letters else {"queue"}
    return all(d.empty for d in queue_depths(settings, client) if d.kind in kinds)
