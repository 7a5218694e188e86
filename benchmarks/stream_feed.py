"""A DynamoDB stream made from the writes themselves, for a table that has none (dynalite).

Each workload write goes to the table with ``ReturnValues=ALL_OLD``, so the old
image is the one the table really replaced (no read between can race it), and
becomes the record DynamoDB Streams would have sent a Lambda trigger of a
``NEW_AND_OLD_IMAGES`` stream: ``eventName`` (INSERT, MODIFY, REMOVE), a digit
``SequenceNumber`` from a counter, typed ``Keys``, ``NewImage``/``OldImage``,
``ApproximateCreationDateTime`` in epoch seconds. The records are then handed in
batches to :func:`producers.lambda_handler.handler`, the code the producer runs on
AWS, in this process (:func:`feed_lambda`); or to the per-message design's producer
(:func:`feed_processor`). A delete of a key the table does not hold makes no
record, as on DynamoDB.
"""

from __future__ import annotations

import itertools
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

from benchmarks.workload import TableOp
from producers.pipeline import StreamProcessor

#: A typed item image (``{"PK": {"S": ...}, ...}``).
Image = dict[str, Any]

#: Records per Lambda invocation: the event source mapping's ``BatchSize``
#: (``deploy/cloudformation.yaml``), i.e. full batches, as a backlog gives them.
LAMBDA_BATCH_SIZE = 1000
#: The first sequence number (DynamoDB's are 21+ digit strings that only grow).
FIRST_SEQUENCE = 10**20


def typed(item: dict[str, Any]) -> dict[str, Any]:
    """A boto3 resource-form item as DynamoDB's wire form (``{"S": ...}``...)."""
    from boto3.dynamodb.types import TypeSerializer

    serialise = TypeSerializer().serialize
    return {name: serialise(value) for name, value in item.items()}


@dataclass
class RecordingWriter:
    """Writes ops one at a time to a low-level DynamoDB client and keeps their stream records."""

    client: Any
    table: str
    stream_arn: str
    region: str = "us-east-1"
    _sequence: Iterator[int] = field(default_factory=lambda: itertools.count(FIRST_SEQUENCE))

    def record(
        self,
        event: str,
        keys: dict[str, Any],
        new: dict[str, Any] | None,
        old: dict[str, Any] | None,
    ) -> dict[str, Any]:
        body: dict[str, Any] = {
            "ApproximateCreationDateTime": int(time.time()),
            "Keys": keys,
            "SequenceNumber": str(next(self._sequence)),
            "SizeBytes": len(repr(new or old)),
            "StreamViewType": "NEW_AND_OLD_IMAGES",
        }
        if new is not None:
            body["NewImage"] = new
        if old is not None:
            body["OldImage"] = old
        return {
            "eventID": uuid.uuid4().hex,
            "eventName": event,
            "eventVersion": "1.1",
            "eventSource": "aws:dynamodb",
            "awsRegion": self.region,
            "dynamodb": body,
            "eventSourceARN": self.stream_arn,
        }

    def write(self, ops: Sequence[TableOp]) -> list[dict[str, Any]]:
        """Each op in order (one PutItem or DeleteItem each); their stream records."""
        records = []
        for op in ops:
            if op.put is not None:
                new = typed(op.put)
                old = self.client.put_item(
                    TableName=self.table, Item=new, ReturnValues="ALL_OLD"
                ).get("Attributes")
                keys = {"PK": new["PK"], "SK": new["SK"]}
                records.append(self.record("MODIFY" if old else "INSERT", keys, new, old))
            elif op.delete is not None:
                keys = typed(op.delete)
                old = self.client.delete_item(
                    TableName=self.table, Key=keys, ReturnValues="ALL_OLD"
                ).get("Attributes")
                if old:
                    records.append(self.record("REMOVE", keys, None, old))
        return records


def batches(records: Sequence[Any], size: int = LAMBDA_BATCH_SIZE) -> list[Sequence[Any]]:
    return [records[start : start + size] for start in range(0, len(records), size)]


def feed_lambda(records: Sequence[dict[str, Any]], size: int = LAMBDA_BATCH_SIZE) -> int:
    """Invoke the Lambda handler on each batch, as the event source mapping does; changes sent.

    Any ``batchItemFailures`` raise: a benchmark whose records did not all go out
    would measure less work than it claims.
    """
    from producers import lambda_handler

    for n, batch in enumerate(batches(records, size)):
        context = SimpleNamespace(aws_request_id=f"bench-{n}")
        answer = lambda_handler.handler({"Records": list(batch)}, context)
        if answer["batchItemFailures"]:
            raise RuntimeError(f"the handler reported failures: {answer['batchItemFailures'][:5]}")
    return len(records)


def feed_processor(
    processor: StreamProcessor, records: Sequence[dict[str, Any]], size: int = LAMBDA_BATCH_SIZE
) -> int:
    """The same batches through another producer (the per-message design's); changes sent."""
    changes = 0
    for batch in batches(records, size):
        report = processor.process(batch)
        if report.error or report.malformed:
            raise RuntimeError(f"the producer failed: {report.error or report.malformed[:5]}")
        changes += report.changes
    return changes
