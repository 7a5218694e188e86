"""What one call to this run's moto costs, so a figure bounded by moto can be shown to be.

Every DynamoDB request is served one at a time (:mod:`chromasync.motoserver`), on
one core, with moto's own serialisation of each returned item; the pipeline's
reads and the stream's GetRecords queue behind one another there. Each probe is
timed from this process, sequentially, on an otherwise idle stack.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from benchmarks.stack import BenchStack
from chromasync.core.keys import image_pk, receipt_sk, word_sk
from chromasync.seed import ReceiptSpec


def _ms(call: Callable[[], Any], repeat: int) -> float:
    began = time.perf_counter()
    for _ in range(repeat):
        call()
    return (time.perf_counter() - began) / repeat * 1000


def probe_moto(stack: BenchStack, spec: ReceiptSpec, repeat: int = 10) -> dict[str, Any]:
    dynamodb = stack.boto("dynamodb")
    streams = stack.boto("dynamodbstreams")
    sqs = stack.boto("sqs")
    table = stack.settings.table
    pk = {"S": image_pk(spec.image_id)}

    def query(prefix: str) -> Any:
        return dynamodb.query(
            TableName=table,
            KeyConditionExpression="PK = :pk AND begins_with(SK, :sk)",
            ExpressionAttributeValues={":pk": pk, ":sk": {"S": prefix}},
            ConsistentRead=True,
        )

    receipt_items = len(query(receipt_sk(spec.receipt_id))["Items"])
    words = [word_sk(spec.receipt_id, lid, wid) for lid, wid in spec.word_keys()][:100]
    keys = [{"PK": pk, "SK": {"S": sk}} for sk in words]
    word_item = dynamodb.get_item(TableName=table, Key=keys[0], ConsistentRead=True)["Item"]
    arn = dynamodb.describe_table(TableName=table)["Table"]["LatestStreamArn"]
    shard = streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"][0]["ShardId"]

    def get_records() -> int:
        iterator = streams.get_shard_iterator(
            StreamArn=arn, ShardId=shard, ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        return len(streams.get_records(ShardIterator=iterator, Limit=1000)["Records"])

    records = get_records()
    records_ms = _ms(get_records, 2)
    url = sqs.create_queue(QueueName=f"{stack.settings.queue_prefix}probe")["QueueUrl"]
    body = "x" * 2000

    def receive_delete() -> None:
        got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=1, WaitTimeSeconds=0)
        for message in got.get("Messages", []):
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])

    ms = {
        "GetItem": _ms(
            lambda: dynamodb.get_item(TableName=table, Key=keys[0], ConsistentRead=True), repeat
        ),
        # A word's item written back as it is (a stream record each, before the
        # workloads' records: the producer measurements start after them).
        "PutItem": _ms(lambda: dynamodb.put_item(TableName=table, Item=word_item), repeat),
        f"Query receipt ({receipt_items} items)": _ms(
            lambda: query(receipt_sk(spec.receipt_id)), repeat
        ),
        "Query a word's labels": _ms(lambda: query(f"{words[0]}#LABEL#"), repeat),
        "BatchGetItem per key": _ms(
            lambda: dynamodb.batch_get_item(
                RequestItems={table: {"Keys": keys, "ConsistentRead": True}}
            ),
            max(1, repeat // 5),
        )
        / len(keys),
        "GetRecords per record": records_ms / max(records, 1),
        "SQS send": _ms(lambda: sqs.send_message(QueueUrl=url, MessageBody=body), repeat),
        "SQS receive+delete": _ms(receive_delete, repeat),
    }
    sqs.delete_queue(QueueUrl=url)
    return {"ms": ms, "receipt_items": receipt_items, "records_read": records}
