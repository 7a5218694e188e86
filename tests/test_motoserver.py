"""Our moto wrapper answers reads with JSON written directly; boto3 must see the same data.

``chromasync.motoserver`` skips moto's shape-walking response serializer for
GetItem, BatchGetItem, Query, Scan and GetRecords (most of moto's time per
read). These tests write every attribute type, read it back through each of
those operations, and compare with a moto server that uses its own
serializer, so a difference in what boto3 parses would fail here.
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
