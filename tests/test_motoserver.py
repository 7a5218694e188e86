"""Our moto wrapper answers reads with JSON written directly; boto3 must see the same data.

``chromasync.motoserver`` skips moto's shape-walking response serializer for
GetItem, BatchGetItem, Query, Scan and GetRecords (most of moto's time per
read). These tests write every attribute type, read it back through each of
those operations, and compare with a moto server that uses its own
serializer, so a difference in what boto3 parses would fail here.

The wrapper's request counter (``--count-requests``, for the AWS cost model) is
checked against calls whose bill is known: item sizes chosen to cross the 1 KB and
4 KB steps, a filtered Query, a conditional write refused, SQS payloads over 64 KB,
both SQS protocols, and S3.
"""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import boto3
import pytest

from chromasync.core.config import Settings
from chromasync.local import MotoServer
from chromasync.motoserver import DIRECT_HEADER
from chromasync.provision import ensure_table

TABLE = "types"

ITEM: dict[str, Any] = {
    "PK": {"S": "IMAGE#é-1"},
    "SK": {"S": "RECEIPT#00001"},
    "text": {"S": 'quote " backslash \\ newline \n tab \t unicode ☃ 𝄞'},
    "number": {"N": "12345678901234567890.123456789"},
    "negative": {"N": "-0.000001"},
    "blob": {"B": b"\x00\x01\xff binary"},
    "flag": {"BOOL": False},
    "nothing": {"NULL": True},
    "strings": {"SS": ["b", "a"]},
    "numbers": {"NS": ["1", "2.5"]},
    "blobs": {"BS": [b"\x00", b"\x01"]},
    "list": {"L": [{"S": "x"}, {"N": "1"}, {"M": {"deep": {"B": b"\x02"}}}]},
    "map": {"M": {"empty": {"S": ""}, "nested": {"L": []}}},
}


def _client(server: MotoServer, service: str) -> Any:
    return boto3.client(
        service,
        endpoint_url=server.url,
        region_name="us-east-1",
        aws_access_key_id="test",
        aws_secret_access_key="test",
    )


def _reads(server: MotoServer) -> dict[str, Any]:
    """Every read operation's parsed answer for the same writes (metadata left out)."""
    ddb = _client(server, "dynamodb")
    ensure_table(Settings.from_env({"CHROMASYNC_TABLE": TABLE}), client=ddb)
    ddb.put_item(TableName=TABLE, Item=ITEM)
    ddb.put_item(TableName=TABLE, Item={**ITEM, "flag": {"BOOL": True}})
    ddb.put_item(TableName=TABLE, Item={**ITEM, "SK": {"S": "RECEIPT#00002"}})
    ddb.delete_item(TableName=TABLE, Key={"PK": ITEM["PK"], "SK": {"S": "RECEIPT#00002"}})
    ddb.put_item(TableName=TABLE, Item={"PK": ITEM["PK"], "SK": {"S": "RECEIPT#00003"}})
    key = {"PK": ITEM["PK"], "SK": ITEM["SK"]}
    missing = {"PK": ITEM["PK"], "SK": {"S": "RECEIPT#00009"}}
    got = ddb.get_item(TableName=TABLE, Key=key, ConsistentRead=True)
    out: dict[str, Any] = {
        "direct": DIRECT_HEADER in got["ResponseMetadata"]["HTTPHeaders"],
        "get": got["Item"],
        "get_missing": "Item" in ddb.get_item(TableName=TABLE, Key=missing),
        "batch": ddb.batch_get_item(
            RequestItems={TABLE: {"Keys": [key, missing], "ConsistentRead": True}}
        )["Responses"][TABLE],
    }
    query = ddb.query(
        TableName=TABLE,
        KeyConditionExpression="PK = :pk AND begins_with(SK, :sk)",
        ExpressionAttributeValues={":pk": ITEM["PK"], ":sk": {"S": "RECEIPT#"}},
        ConsistentRead=True,
        Limit=1,
    )
    out["query"] = {k: query.get(k) for k in ("Items", "Count", "ScannedCount", "LastEvaluatedKey")}
    # Sort-key conditions the wrapper narrows (begins_with) and those it leaves to moto.
    for name, condition, values, forward in (
        ("prefix_one", "begins_with(SK, :sk)", {":sk": {"S": "RECEIPT#00003"}}, True),
        ("prefix_none", "begins_with(SK, :sk)", {":sk": {"S": "ZZZ"}}, True),
        ("prefix_reverse", "begins_with(SK, :sk)", {":sk": {"S": "RECEIPT#"}}, False),
        ("between", "SK BETWEEN :a AND :b", {":a": {"S": "R"}, ":b": {"S": "S"}}, True),
    ):
        got = ddb.query(
            TableName=TABLE,
            KeyConditionExpression=f"PK = :pk AND {condition}",
            ExpressionAttributeValues={":pk": ITEM["PK"], **values},
            ScanIndexForward=forward,
        )
        out[name] = [item["SK"]["S"] for item in got["Items"]]
    scan = ddb.scan(TableName=TABLE)
    out["scan"] = {k: scan.get(k) for k in ("Items", "Count", "LastEvaluatedKey")}
    streams = _client(server, "dynamodbstreams")
    arn = ddb.describe_table(TableName=TABLE)["Table"]["LatestStreamArn"]
    (shard,) = streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"]
    iterator = streams.get_shard_iterator(
        StreamArn=arn, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
    )["ShardIterator"]
    page = streams.get_records(ShardIterator=iterator)
    out["records"] = [
        {
            "eventName": r["eventName"],
            "time_type": type(r["dynamodb"]["ApproximateCreationDateTime"]).__name__,
            **{k: r["dynamodb"].get(k) for k in ("Keys", "NewImage", "OldImage")},
        }
        for r in page["Records"]
    ]
    out["has_next_iterator"] = bool(page.get("NextShardIterator"))
    return out


@pytest.fixture(scope="module")
def reference() -> Iterator[MotoServer]:
    server = MotoServer.start(moto_serializer=True)
    yield server
    server.stop()


def test_reads_through_the_direct_path_match_moto_s_own_serializer(
    moto: MotoServer, reference: MotoServer
) -> None:
    reference.reset()
    fast, slow = _reads(moto), _reads(reference)
    assert fast.pop("direct") and not slow.pop("direct")
    assert fast == slow


def test_every_attribute_type_round_trips(moto: MotoServer) -> None:
    got = _reads(moto)
    current = {**ITEM, "flag": {"BOOL": True}}
    assert got["get"] == current
    assert got["get_missing"] is False
    assert got["batch"] == [current]
    assert got["query"]["Items"] == [current] and got["query"]["LastEvaluatedKey"] is not None
    assert got["scan"]["Items"][0] == current and len(got["scan"]["Items"]) == 2
    assert got["prefix_one"] == ["RECEIPT#00003"] and got["prefix_none"] == []
    assert got["prefix_reverse"] == ["RECEIPT#00003", "RECEIPT#00001"]
    assert got["between"] == ["RECEIPT#00001", "RECEIPT#00003"]
    events = [r["eventName"] for r in got["records"]]
    assert events == ["INSERT", "MODIFY", "INSERT", "REMOVE", "INSERT"]
    assert got["records"][1]["OldImage"] == ITEM
    assert got["records"][1]["NewImage"] == current
    assert {r["time_type"] for r in got["records"]} == {"datetime"}
    # boto3 turns N into text and B into bytes: nothing was rounded or re-encoded.
    assert Decimal(got["get"]["number"]["N"]) == Decimal("12345678901234567890.123456789")


def test_errors_keep_moto_s_own_answers(moto: MotoServer) -> None:
    ddb = _client(moto, "dynamodb")
    with pytest.raises(ddb.exceptions.ResourceNotFoundException):
        ddb.get_item(TableName="absent", Key={"PK": {"S": "x"}, "SK": {"S": "y"}})


# -- the request counter (``--count-requests``) --------------------------------------------


@pytest.fixture(scope="module")
def counting() -> Iterator[MotoServer]:
    server = MotoServer.start(count_requests=True)
    yield server
    server.stop()


def _tallies(server: MotoServer) -> dict[tuple[str, str], dict[str, Any]]:
    """The counts since the last call, by (service, operation), zeroed in the same step."""
    entries = server.requests(reset=True)["entries"]
    return {(e["service"], e["operation"]): e for e in entries}


#: 5,000 bytes of one attribute: an item of ~5 KB, two read units, five write units.
BIG = {"PK": {"S": "P"}, "SK": {"S": "big"}, "text": {"S": "x" * 5000}}
SMALL = {"PK": {"S": "P"}, "SK": {"S": "small"}, "label": {"S": "TOTAL"}}


def test_counter_meters_dynamodb_reads_and_writes_as_dynamodb_bills_them(
    counting: MotoServer,
) -> None:
    counting.reset()
    ddb = _client(counting, "dynamodb")
    ensure_table(Settings.from_env({"CHROMASYNC_TABLE": TABLE}), client=ddb)
    _tallies(counting)
    ddb.put_item(TableName=TABLE, Item=BIG)
    ddb.put_item(TableName=TABLE, Item=SMALL)
    with pytest.raises(ddb.exceptions.ConditionalCheckFailedException):
        ddb.put_item(TableName=TABLE, Item=SMALL, ConditionExpression="attribute_not_exists(PK)")
    key = {"PK": BIG["PK"], "SK": BIG["SK"]}
    ddb.get_item(TableName=TABLE, Key=key, ConsistentRead=True)  # 2 units
    ddb.get_item(TableName=TABLE, Key=key)  # eventually consistent: 1
    missing = {"PK": BIG["PK"], "SK": {"S": "none"}}
    ddb.batch_get_item(RequestItems={TABLE: {"Keys": [key, missing], "ConsistentRead": True}})
    # The filter returns the small item only; DynamoDB bills both items read (~5 KB: 2).
    got = ddb.query(
        TableName=TABLE,
        KeyConditionExpression="PK = :pk",
        FilterExpression="attribute_exists(#l)",
        ExpressionAttributeNames={"#l": "label"},
        ExpressionAttributeValues={":pk": {"S": "P"}},
        ConsistentRead=True,
    )
    assert [i["SK"]["S"] for i in got["Items"]] == ["small"]
    counts = _tallies(counting)
    put = counts[("dynamodb", "PutItem")]
    assert (put["requests"], put["errors"], put["write_units"]) == (3, 1, 5 + 1 + 1)
    assert put["resource"] == TABLE
    assert counts[("dynamodb", "GetItem")]["read_units"] == 3.0
    assert counts[("dynamodb", "BatchGetItem")]["read_units"] == 2 + 1  # found + missing key
    assert counts[("dynamodb", "Query")]["read_units"] == 2.0
    assert all(e["requests"] == e["billed_requests"] for e in counts.values())
    assert _tallies(counting) == {}  # reset by the previous call


def test_counter_meters_sqs_payloads_in_64_kb_chunks(counting: MotoServer) -> None:
    sqs = _client(counting, "sqs")
    url = sqs.create_queue(QueueName="counted")["QueueUrl"]
    _tallies(counting)
    sqs.send_message(QueueUrl=url, MessageBody="x" * 70_000)  # two chunks
    sqs.send_message_batch(
        QueueUrl=url, Entries=[{"Id": str(n), "MessageBody": "hi"} for n in range(3)]
    )
    got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)["Messages"]
    sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)  # empty
    sqs.delete_message_batch(
        QueueUrl=url,
        Entries=[{"Id": str(n), "ReceiptHandle": m["ReceiptHandle"]} for n, m in enumerate(got)],
    )
    counts = _tallies(counting)
    send = counts[("sqs", "SendMessage")]
    assert (send["requests"], send["billed_requests"], send["payload_bytes"]) == (1, 2, 70_000)
    assert send["resource"] == "counted"
    batch = counts[("sqs", "SendMessageBatch")]
    assert (batch["requests"], batch["billed_requests"], batch["messages"]) == (1, 1, 3)
    receive = counts[("sqs", "ReceiveMessage")]
    assert (receive["requests"], receive["messages"], receive["empty"]) == (2, 4, 1)
    assert receive["billed_requests"] == 2 + 1
    assert counts[("sqs", "DeleteMessageBatch")]["messages"] == 4


def test_counter_reads_sqs_query_protocol_and_s3_methods(counting: MotoServer) -> None:
    import urllib.parse
    import urllib.request

    sqs = _client(counting, "sqs")
    url = sqs.create_queue(QueueName="query")["QueueUrl"]
    _tallies(counting)
    form = {"Action": "SendMessage", "QueueUrl": url, "MessageBody": "hello"}
    scope = "Credential=test/20260101/us-east-1/sqs/aws4_request, SignedHeaders=host, Signature=0"
    request = urllib.request.Request(
        counting.url + "/",
        data=urllib.parse.urlencode(form).encode(),
        headers={
            "Content-Type": "application/x-www-form-urlencoded",
            "Authorization": f"AWS4-HMAC-SHA256 {scope}",
        },
    )
    urllib.request.urlopen(request, timeout=10).close()
    s3 = _client(counting, "s3")
    s3.create_bucket(Bucket="counted-bucket")
    s3.put_object(Bucket="counted-bucket", Key="a/b", Body=b"z")
    s3.get_object(Bucket="counted-bucket", Key="a/b")
    counts = _tallies(counting)
    send = counts[("sqs", "SendMessage")]
    assert (send["requests"], send["payload_bytes"], send["resource"]) == (1, 5, "query")
    assert sqs.receive_message(QueueUrl=url)["Messages"][0]["Body"] == "hello"
    assert {k for k in counts if k[0] == "s3"} == {
        ("s3", "PUT bucket"),
        ("s3", "PUT object"),
        ("s3", "GET object"),
    }
    # moto's own API is not AWS's: not counted.
    _tallies(counting)
    counting.reset()
    assert _tallies(counting) == {}
