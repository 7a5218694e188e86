"""The worker's read client (``tasks.dynamo_reads``) answers exactly what boto3's answers.

Its reads skip botocore's shape walk (``json.loads`` of the body); these tests
read every attribute type through both clients from one moto server, and parse
raw bodies with both parsers, so any difference in what the worker sees fails here.
"""

from __future__ import annotations

import json
from typing import Any

import boto3
import botocore.session
from botocore.parsers import JSONParser

from chromasync.core.config import AwsSettings, Settings
from chromasync.local import MotoServer
from chromasync.provision import ensure_table
from tasks.dynamo_reads import ReadParserFactory, read_client

TABLE = "reads"

#: Every attribute type but binary (the fast path's case).
PLAIN: dict[str, Any] = {
    "PK": {"S": "IMAGE#é-1"},
    "SK": {"S": "RECEIPT#00001"},
    "text": {"S": 'quote " backslash \\ "B": newline \n unicode ☃ 𝄞'},
    "number": {"N": "12345678901234567890.123456789"},
    "flag": {"BOOL": False},
    "nothing": {"NULL": True},
    "strings": {"SS": ["b", "a"]},
    "numbers": {"NS": ["1", "2.5"]},
    "list": {"L": [{"S": "x"}, {"N": "1"}, {"M": {"deep": {"S": "B"}}}]},
    "map": {"M": {"empty": {"S": ""}, "nested": {"L": []}}},
}
#: With binary values (botocore's parser decodes them).
BINARY: dict[str, Any] = {
    **PLAIN,
    "SK": {"S": "RECEIPT#00002"},
    "blob": {"B": b"\x00\x01\xff binary"},
    "blobs": {"BS": [b"\x00", b"\x01"]},
    "list": {"L": [{"M": {"deep": {"B": b"\x02"}}}]},
}


def _answers(ddb: Any) -> dict[str, Any]:
    key = {"PK": PLAIN["PK"], "SK": PLAIN["SK"]}
    binary_key = {"PK": BINARY["PK"], "SK": BINARY["SK"]}
    missing = {"PK": PLAIN["PK"], "SK": {"S": "RECEIPT#00009"}}
    query = ddb.query(
        TableName=TABLE,
        KeyConditionExpression="PK = :pk AND begins_with(SK, :sk)",
        ExpressionAttributeValues={":pk": PLAIN["PK"], ":sk": {"S": "RECEIPT#"}},
        ConsistentRead=True,
        Limit=1,
    )
    batch = ddb.batch_get_item(
        RequestItems={TABLE: {"Keys": [key, binary_key, missing], "ConsistentRead": True}}
    )
    scan = ddb.scan(TableName=TABLE)
    # A binary value in the request itself (sent base64-encoded, as botocore sends it).
    by_blob = ddb.scan(
        TableName=TABLE,
        FilterExpression="#blob = :blob",
        ExpressionAttributeNames={"#blob": "blob"},
        ExpressionAttributeValues={":blob": BINARY["blob"]},
    )
    return {
        "get": ddb.get_item(TableName=TABLE, Key=key, ConsistentRead=True)["Item"],
        "get_binary": ddb.get_item(TableName=TABLE, Key=binary_key)["Item"],
        "get_missing": "Item" in ddb.get_item(TableName=TABLE, Key=missing),
        "query": {k: query.get(k) for k in ("Items", "Count", "ScannedCount", "LastEvaluatedKey")},
        "batch": sorted(batch["Responses"][TABLE], key=lambda item: item["SK"]["S"]),
        "unprocessed": batch["UnprocessedKeys"],
        "scan": {k: scan.get(k) for k in ("Items", "Count", "ScannedCount")},
        "by_blob": by_blob["Items"],
        "status": scan["ResponseMetadata"]["HTTPStatusCode"],
    }


def test_reads_answer_what_boto3_answers(moto: MotoServer) -> None:
    env = moto.client_env()
    aws = AwsSettings(
        region="us-east-1",
        access_key_id=env["AWS_ACCESS_KEY_ID"],
        secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
        endpoint_url=moto.url,
    )
    plain = boto3.client("dynamodb", **aws.client_kwargs())
    ensure_table(Settings.from_env({"CHROMASYNC_TABLE": TABLE}), client=plain)
    plain.put_item(TableName=TABLE, Item=PLAIN)
    plain.put_item(TableName=TABLE, Item=BINARY)
    fast = read_client(aws)
    got, expected = _answers(fast), _answers(plain)
    assert got == expected
    assert got["get"] == PLAIN and got["get_binary"] == BINARY
    assert got["by_blob"] == [BINARY]
    # An error is botocore's, modelled exception and all.
    try:
        fast.get_item(TableName="absent", Key={"PK": {"S": "x"}, "SK": {"S": "y"}})
    except fast.exceptions.ResourceNotFoundException:
        pass
    else:
        raise AssertionError("a read of a missing table must raise ResourceNotFoundException")


def test_the_parser_returns_the_wire_json_only_without_binary_values() -> None:
    model = botocore.session.get_session().get_service_model("dynamodb")
    fast = ReadParserFactory().create_parser("json")
    slow = JSONParser()
    wire = {"Items": [{"B": {"S": "a key named B"}}], "Count": 1, "ScannedCount": 1}
    bodies = [
        {"Items": [PLAIN], "Count": 1, "ScannedCount": 1, "LastEvaluatedKey": {"PK": PLAIN["PK"]}},
        {"Items": [{"blob": {"B": "AAH/"}}], "Count": 1, "ScannedCount": 1},
        wire,
    ]
    for body in bodies:
        for separators in ((",", ":"), (", ", ": ")):
            raw = json.dumps(body, separators=separators).encode()
            response = {"body": raw, "headers": {"x-amzn-requestid": "r"}, "status_code": 200}
            shape = model.operation_model("Query").output_shape
            assert fast.parse(response, shape) == slow.parse(response, shape)
    assert slow.parse(
        {"body": b'{"Items":[{"blob":{"B":"AAH/"}}]}', "headers": {}, "status_code": 200},
        model.operation_model("Query").output_shape,
    )["Items"] == [{"blob": {"B": b"\x00\x01\xff"}}]


def test_plain_reads_take_the_fast_path() -> None:
    """A member the model does not know is dropped by the shape walk and kept by
    ``json.loads``: it shows which path a body took."""
    model = botocore.session.get_session().get_service_model("dynamodb")
    fast = ReadParserFactory().create_parser("json")
    for operation, binary in (("Query", False), ("GetItem", False), ("Query", True)):
        body = {"Unmodelled": 1, "Items": [{"blob": {"B": "AAH/"}}] if binary else []}
        response = {"body": json.dumps(body).encode(), "headers": {}, "status_code": 200}
        parsed = fast.parse(response, model.operation_model(operation).output_shape)
        assert ("Unmodelled" in parsed) is not binary, (operation, binary)
    # Other operations (a write's answer) keep botocore's parser.
    response = {"body": b'{"Unmodelled": 1}', "headers": {}, "status_code": 200}
    shape = model.operation_model("PutItem").output_shape
    assert "Unmodelled" not in fast.parse(response, shape)
