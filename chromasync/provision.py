"""Creating what the pipeline needs in AWS (or moto): queues with dead-letter queues, the table.

Every collection gets its main queue with an SQS RedrivePolicy onto its
dead-letter queue: the safety net for a worker that dies mid-task again and
again (the worker itself dead-letters what it cannot apply, with details).
"""

from __future__ import annotations

import contextlib
import json
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

    sqs = client or boto3.client("sqs", **settings.aws.client_kwargs())
    urls: dict[str, str] = {}
    for collection in settings.collections:
        dlq_name = settings.dlq_name(collection)
        fifo: dict[str, str] = {"FifoQueue": "true"} if settings.fifo else {}
        dlq_url = sqs.create_queue(
            QueueName=dlq_name,
            Attributes={"MessageRetentionPeriod": str(14 * 24 * 3600), **fifo},
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


def queue_depths(settings: Settings, client: Any | None = None) -> dict[str, tuple[int, int]]:
    """(visible, in flight) messages of every queue and dead-letter queue, by queue name."""
    import boto3

    sqs = client or boto3.client("sqs", **settings.aws.client_kwargs())
    depths: dict[str, tuple[int, int]] = {}
    for collection in settings.collections:
        for name in (settings.sqs_queue_name(collection), settings.dlq_name(collection)):
            url = sqs.get_queue_url(QueueName=name)["QueueUrl"]
            attrs = sqs.get_queue_attributes(
                QueueUrl=url,
                AttributeNames=[
                    "ApproximateNumberOfMessages",
                    "ApproximateNumberOfMessagesNotVisible",
                ],
            )["Attributes"]
            depths[name] = (
                int(attrs["ApproximateNumberOfMessages"]),
                int(attrs["ApproximateNumberOfMessagesNotVisible"]),
            )
    return depths
