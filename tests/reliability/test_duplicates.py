"""Every record ten times, the stream reversed, the whole stream replayed twice: Chroma ends
equal to the table."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import boto3

from chromasync.core.keys import image_pk, line_sk, receipt_sk, word_sk
from chromasync.seed import demo_receipts, merchant_fields
from producers.pipeline import StreamProcessor
from producers.publishing import Publisher
from tests.stack import Stack


def all_stream_records(stack: Stack) -> list[dict[str, Any]]:
    kwargs = stack.settings.aws.client_kwargs()
    streams = boto3.client("dynamodbstreams", **kwargs)
    arn = boto3.client("dynamodb", **kwargs).describe_table(TableName=stack.settings.table)[
        "Table"
    ]["LatestStreamArn"]
    records: list[dict[str, Any]] = []
    for shard in streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"]:
        iterator = streams.get_shard_iterator(
            StreamArn=arn, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        while iterator:
            page = streams.get_records(ShardIterator=iterator, Limit=1000)
            records.extend(page["Records"])
            if not page["Records"]:
                break
            iterator = page.get("NextShardIterator")
    return records


def churn(stack: Stack, receipts) -> None:
    """A mix of every kind of change, several of them on the same items."""
    a, b, c = receipts
    for edition in (1, 2, 3):
        stack.table.put_item(
            Item={
                "PK": image_pk(a.image_id),
                "SK": f"{receipt_sk(a.receipt_id)}#METADATA",
                **merchant_fields(0, edition),
            }
        )
    label = {
        "PK": image_pk(b.image_id),
        "SK": f"{word_sk(b.receipt_id, 1, 2)}#LABEL#TOTAL",
        "label": "TOTAL",
        "validation_status": "PENDING",
        "label_proposed_by": "llm",
        "timestamp_added": "2026-04-01T00:00:00",
    }
    stack.table.put_item(Item=label)
    stack.table.put_item(Item={**label, "validation_status": "VALID"})
    stack.table.delete_item(
        Key={"PK": image_pk(b.image_id), "SK": f"{word_sk(b.receipt_id, 1, 1)}#LABEL#PRODUCT_NAME"}
    )
    stack.table.update_item(
        Key={"PK": image_pk(c.image_id), "SK": line_sk(c.receipt_id, 2)},
        UpdateExpression="SET #t = :t, confidence = :c",
        ExpressionAttributeNames={"#t": "text"},
        ExpressionAttributeValues={":t": "EDITED", ":c": Decimal("0.42")},
    )
    stack.table.delete_item(Key={"PK": image_pk(c.image_id), "SK": word_sk(c.receipt_id, 2, 2)})
    stack.table.delete_item(Key={"PK": image_pk(a.image_id), "SK": line_sk(a.receipt_id, 1)})


def test_duplicated_reversed_and_replayed_stream_converges_to_the_table(stack: Stack) -> None:
    receipts = demo_receipts(3, lines=2, words_per_line=2)
    stack.seed(receipts)
    churn(stack, receipts)
    records = all_stream_records(stack)
    assert len(records) > 30
    stack.start_workers()
    processor = StreamProcessor(stack.settings, Publisher(stack.settings))
    # 1. every record delivered ten times, interleaved
    processor.process([r for r in records for _ in range(10)])
    # 2. the stream in reverse order
    processor.process(list(reversed(records)))
    # 3. the whole stream replayed twice
    processor.process(records)
    processor.process(records)
    stack.wait_drained(120, what="every task to be applied")
    result = stack.cli("verify")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no drift" in result.stdout
