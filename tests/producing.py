"""Helpers of the producer tests: stream records as Lambda sends them, and tasks read back from SQS.

A task on SQS is kombu's SQS encoding of a Celery message: the SQS body is
base64 of a JSON envelope whose ``body`` is base64 of the JSON
``[args, kwargs, embed]``; ``args[0]`` is our payload. :func:`read_tasks`
undoes that and validates the payload with the contract, so a test sees
exactly what a worker would.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import boto3
from boto3.dynamodb.types import TypeSerializer

from chromasync.core.config import Settings
from chromasync.core.contract import APPLY_TASK_NAME, ChangeBatch
from chromasync.core.keys import image_pk, line_sk, receipt_sk, word_sk
from chromasync.provision import ensure_queues
from producers.quarantine import QUARANTINE_SUFFIX

_serializer = TypeSerializer()

IMAGE = "11111111-2222-4333-8444-555555555555"


def typed(item: dict[str, Any]) -> dict[str, Any]:
    """A plain item as DynamoDB typed attributes (floats become exact numbers)."""
    plain = json.loads(json.dumps(item), parse_float=Decimal)
    return {k: _serializer.serialize(v) for k, v in plain.items()}


def record(
    event_name: str,
    pk: str,
    sk: str,
    seq: int,
    new: dict[str, Any] | None = None,
    old: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """One Lambda-shaped stream record (``OldImage``/``NewImage`` null when absent)."""
    keys = {"PK": pk, "SK": sk}
    return {
        "eventID": f"event-{seq}",
        "eventName": event_name,
        "eventVersion": "1.1",
        "eventSource": "aws:dynamodb",
        "awsRegion": "us-east-1",
        "dynamodb": {
            "ApproximateCreationDateTime": 1763700000 + seq,
            "Keys": typed(keys),
            "NewImage": typed({**keys, **new}) if new is not None else None,
            "OldImage": typed({**keys, **old}) if old is not None else None,
            "SequenceNumber": f"{seq:021d}",
            "SizeBytes": 100,
            "StreamViewType": "NEW_AND_OLD_IMAGES",
        },
        "eventSourceARN": "arn:aws:dynamodb:us-east-1:123456789012:table/t/stream/x",
    }


def line_record(
    event_name: str, seq: int, receipt: int = 1, line: int = 1, image: str = IMAGE, **fields: Any
) -> dict[str, Any]:
    """A RECEIPT_LINE record whose text differs between old and new (so MODIFY counts)."""
    new = {"text": f"line {line} v{seq}", **fields}
    old = {"text": f"line {line} before"}
    return record(
        event_name,
        image_pk(image),
        line_sk(receipt, line),
        seq,
        new=None if event_name == "REMOVE" else new,
        old=None if event_name == "INSERT" else old,
    )


def label_sk(receipt: int, line: int, word: int, label: str) -> str:
    return f"{word_sk(receipt, line, word)}#LABEL#{label}"


def metadata_sk(receipt: int) -> str:
    return f"{receipt_sk(receipt)}#METADATA"


@dataclass(frozen=True)
class TaskMessage:
    """One task read back from SQS."""

    batch: ChangeBatch
    attributes: dict[str, str]
    #: Size of the SQS message body as sent, bytes.
    body_bytes: int


def decode_task(body: str) -> ChangeBatch:
    envelope = json.loads(base64.b64decode(body))
    assert envelope["headers"]["task"] == APPLY_TASK_NAME
    args, kwargs, _embed = json.loads(base64.b64decode(envelope["body"]))
    assert kwargs == {}
    return ChangeBatch.model_validate(args[0])


class Queues:
    """The test's queues on moto: created as chromasync creates them, read back and emptied."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.sqs = boto3.client("sqs", **settings.aws.client_kwargs())
        ensure_queues(settings, self.sqs)

    def url(self, name: str) -> str:
        return str(self.sqs.get_queue_url(QueueName=name)["QueueUrl"])

    def _drain(self, name: str) -> list[dict[str, Any]]:
        url = self.url(name)
        messages: list[dict[str, Any]] = []
        while True:
            got = self.sqs.receive_message(
                QueueUrl=url,
                MaxNumberOfMessages=10,
                WaitTimeSeconds=0,
                AttributeNames=["All"],
                VisibilityTimeout=60,
            ).get("Messages", [])
            if not got:
                return messages
            for message in got:
                messages.append(message)
                self.sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])

    def tasks(self, collection: str) -> list[TaskMessage]:
        """Every task on the collection's queue, in the order SQS hands them out (removed)."""
        return [
            TaskMessage(decode_task(m["Body"]), m.get("Attributes", {}), len(m["Body"].encode()))
            for m in self._drain(self.settings.sqs_queue_name(collection))
        ]

    def all_tasks(self) -> dict[str, list[TaskMessage]]:
        return {c: self.tasks(c) for c in self.settings.targets}

    def quarantined(self) -> list[dict[str, Any]]:
        """Messages of the quarantine queue (``record``, ``error``, ``source``), removed."""
        name = f"{self.settings.queue_prefix}{QUARANTINE_SUFFIX}"
        try:
            self.url(name)
        except self.sqs.exceptions.QueueDoesNotExist:
            return []
        return [json.loads(m["Body"]) for m in self._drain(name)]


def stream_pages(streams: Any, stream_arn: str) -> list[list[dict[str, Any]]]:
    """Every record of a stream from its start, page by page as GetRecords returns them,
    read directly with a DynamoDB Streams client (not through our code)."""
    pages = []
    shards = streams.describe_stream(StreamArn=stream_arn)["StreamDescription"]["Shards"]
    for shard in shards:
        iterator = streams.get_shard_iterator(
            StreamArn=stream_arn, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        while iterator:
            page = streams.get_records(ShardIterator=iterator, Limit=1000)
            if not page["Records"]:
                break
            pages.append(page["Records"])
            iterator = page.get("NextShardIterator")
    return pages
