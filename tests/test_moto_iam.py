"""The IAM fidelity layer of our moto wrapper decides as AWS does, so policies can be proven.

Pure tests of the condition evaluator, statement matching and the attribute
names read from DynamoDB expressions, then a moto server of this module's own
(enforcement would break the session's shared one): resources and IAM users are
created while IAM is relaxed, ``enforce_iam()`` switches it on, and each user's
boto3 clients show what their policy allows and denies.

boto3's error codes for a denial, as the layer answers (and AWS does): DynamoDB and
Streams ``AccessDeniedException``, SQS ``AccessDenied``, S3 ``AccessDenied`` (``403``
for HEAD, which has no body; DeleteObjects answers 200 with an AccessDenied per key).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from chromasync.local import MotoServer, wait_for
from chromasync.motoiam.conditions import condition_holds
from chromasync.motoiam.dynamodb import dynamodb_checks
from chromasync.motoiam.expressions import expression_attribute_names, partition_key_values
from chromasync.motoiam.matching import resource_matches
from chromasync.motoiam.model import (
    Check,
    NotModelled,
    Outcome,
    TableKeys,
    Undeterminable,
    Unsupported,
    Where,
)
from chromasync.motoiam.policy import decide
from tests.iam import create_user_keys

ACCOUNT = "123456789012"
REGION = "us-east-1"
TABLE_ARN = f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table"
QUEUE_ARN = f"arn:aws:sqs:{REGION}:{ACCOUNT}"
BUCKET = "iam-proofs"

# --------------------------------------------------------------------------
# Attribute names of DynamoDB expressions
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expression", "names", "expected"),
    [
        (
            "SET #a = :v, b.c = list_append(b.c, :l) REMOVE d[0]",
            {"#a": "alpha"},
            {"alpha", "b", "d"},
        ),
        ("attribute_not_exists(PK) OR expires_at < :now", None, {"PK", "expires_at"}),
        ("ADD fence :one", None, {"fence"}),
        ("set x_status = :s remove y", None, {"x_status", "y"}),
        ("SeT a=:v ReMoVe b aDd c :n dElEtE s :set", None, {"a", "b", "c", "s"}),
        ("#k = :pk AND begins_with(#s, :p)", {"#k": "PK", "#s": "SK"}, {"PK", "SK"}),
        ("a BETWEEN :lo AND :hi or not (b IN (:x, :y))", None, {"a", "b"}),
        ("size(tags) > :n AND NOT contains(#n, :x)", {"#n": "name"}, {"tags", "name"}),
        ("a.b.c, d[1][2].e, #m.#f", {"#m": "map", "#f": "field"}, {"a", "d", "map"}),
        ("SET a = if_not_exists(a, :z) + :one, #t = :t", {"#t": "status"}, {"a", "status"}),
        ("attribute_type (t, :type) AND c <> :c", None, {"t", "c"}),
        ("#dotted = :v", {"#dotted": "not.a.path"}, {"not.a.path"}),
        ("", None, set()),
    ],
)
def test_top_level_attribute_names_of_an_expression(
    expression: str, names: dict[str, str] | None, expected: set[str]
) -> None:
    assert expression_attribute_names(expression, names) == expected


@pytest.mark.parametrize(
    ("expression", "names"),
    [("SET #missing = :v", {"#other": "x"}), ("#a = :v", None), ("a = $v", None)],
)
def test_an_expression_that_cannot_be_read_is_an_error(
    expression: str, names: dict[str, str] | None
) -> None:
    with pytest.raises(ValueError):
        expression_attribute_names(expression, names)


@pytest.mark.parametrize(
    ("expression", "names", "found"),
    [
        ("PK = :pk AND begins_with(SK, :s)", None, [{"S": "w1"}]),
        (":pk = #p AND SK > :s", {"#p": "PK"}, [{"S": "w1"}]),
        ("SK = :s AND PK = :pk", None, [{"S": "w1"}]),
        ("begins_with(SK, :s)", None, []),
        ("other.PK = :pk", None, []),
    ],
)
def test_partition_key_values_of_a_key_condition(
    expression: str, names: dict[str, str] | None, found: list[Any]
) -> None:
    values = {":pk": {"S": "w1"}, ":s": {"S": "LABEL#"}}
    assert partition_key_values(expression, "PK", names, values) == found


# --------------------------------------------------------------------------
# Conditions
# --------------------------------------------------------------------------

CONTEXT = {
    "aws:securetransport": ("false",),
    "dynamodb:attributes": ("PK", "SK", "x_status"),
    "dynamodb:returnvalues": ("UPDATED_NEW",),
}
UNSUPPORTED = "unsupported"


@pytest.mark.parametrize(
    ("block", "expected"),
    [
        # Single-valued keys, plain operators.
        ({"StringEquals": {"dynamodb:ReturnValues": ["NONE", "UPDATED_NEW"]}}, True),
        ({"StringEquals": {"dynamodb:ReturnValues": "ALL_NEW"}}, False),
        ({"StringEquals": {"DynamoDB:returnvalues": "UPDATED_NEW"}}, True),  # key without case
        ({"StringEquals": {"dynamodb:ReturnValues": "updated_new"}}, False),  # value with case
        ({"StringNotEquals": {"dynamodb:ReturnValues": ["ALL_NEW", "ALL_OLD"]}}, True),
        ({"StringNotEquals": {"dynamodb:ReturnValues": ["UPDATED_NEW", "ALL_OLD"]}}, False),
        ({"StringLike": {"dynamodb:ReturnValues": "UPDATED_*"}}, True),
        ({"StringLike": {"dynamodb:ReturnValues": "UPDATED_NE?"}}, True),
        ({"StringLike": {"dynamodb:ReturnValues": "UPDATED_N?"}}, False),
        ({"StringNotLike": {"dynamodb:ReturnValues": "ALL_*"}}, True),
        ({"StringNotLike": {"dynamodb:ReturnValues": "*_NEW"}}, False),
        ({"Bool": {"aws:SecureTransport": "false"}}, True),
        ({"Bool": {"aws:SecureTransport": "true"}}, False),
        ({"Bool": {"aws:SecureTransport": False}}, True),  # a JSON boolean
        ({"StringEqualsIfExists": {"dynamodb:ReturnValues": ["NONE", "UPDATED_NEW"]}}, True),
        ({"StringEqualsIfExists": {"dynamodb:ReturnValues": "ALL_NEW"}}, False),
        # An absent key: false, but true for IfExists and for a negated operator.
        ({"StringEquals": {"dynamodb:Select": "COUNT"}}, False),
        ({"StringLike": {"dynamodb:Select": "*"}}, False),
        ({"StringEqualsIfExists": {"dynamodb:Select": "COUNT"}}, True),
        ({"BoolIfExists": {"aws:SecureTransport": "true"}}, False),
        ({"StringNotEquals": {"dynamodb:Select": "COUNT"}}, True),
        ({"StringNotLike": {"dynamodb:Select": "*"}}, True),
        # Sets.
        ({"ForAllValues:StringLike": {"dynamodb:Attributes": ["PK", "SK", "x_*"]}}, True),
        ({"ForAllValues:StringLike": {"dynamodb:Attributes": ["PK", "x_*"]}}, False),
        ({"ForAllValues:StringEquals": {"dynamodb:LeadingKeys": ["w1"]}}, True),  # absent
        ({"ForAllValues:StringNotEquals": {"dynamodb:Attributes": ["secret"]}}, True),
        ({"ForAllValues:StringNotEquals": {"dynamodb:Attributes": ["SK"]}}, False),
        ({"ForAnyValue:StringEquals": {"dynamodb:Attributes": ["x_status", "y"]}}, True),
        ({"ForAnyValue:StringEquals": {"dynamodb:Attributes": ["y"]}}, False),
        ({"ForAnyValue:StringEquals": {"dynamodb:LeadingKeys": ["w1"]}}, False),  # absent
        ({"ForAnyValue:StringEqualsIfExists": {"dynamodb:LeadingKeys": ["w1"]}}, True),
        ({"ForAnyValue:StringNotLike": {"dynamodb:Attributes": ["PK", "SK"]}}, True),
        ({"ForAnyValue:StringNotLike": {"dynamodb:Attributes": ["*"]}}, False),
        ({"ForAllValues:StringEquals": {"dynamodb:ReturnValues": ["UPDATED_NEW"]}}, True),
        # Every operator and key must hold.
        (
            {
                "StringEquals": {"dynamodb:ReturnValues": "UPDATED_NEW"},
                "Bool": {"aws:SecureTransport": "false"},
            },
            True,
        ),
        (
            {
                "StringEquals": {"dynamodb:ReturnValues": "UPDATED_NEW"},
                "Bool": {"aws:SecureTransport": "true"},
            },
            False,
        ),
        # Not modelled: never true.
        ({"NumericLessThan": {"dynamodb:ReturnValues": "1"}}, UNSUPPORTED),
        ({"StringEqualsIgnoreCase": {"dynamodb:ReturnValues": "NONE"}}, UNSUPPORTED),
        ({"Null": {"dynamodb:Select": "true"}}, UNSUPPORTED),
        ({"ForSomeValues:StringEquals": {"dynamodb:Attributes": "PK"}}, UNSUPPORTED),
        ({"StringEquals": {"aws:SourceIp": "127.0.0.1"}}, UNSUPPORTED),
        ({"StringEquals": {"dynamodb:EnclosingOperation": "TransactWriteItems"}}, UNSUPPORTED),
        ({"StringEquals": {"dynamodb:ReturnValues": "${aws:username}"}}, UNSUPPORTED),
        ({"StringEquals": {"dynamodb:Attributes": "PK"}}, UNSUPPORTED),  # multivalued, plain
        ({"StringNotEqualsIfExists": {"dynamodb:LeadingKeys": "w1"}}, UNSUPPORTED),
        (
            {
                "StringEquals": {"dynamodb:ReturnValues": "UPDATED_NEW"},
                "NumericLessThan": {"dynamodb:ReturnValues": "1"},
            },
            UNSUPPORTED,
        ),
        # ... unless another condition is false, which decides.
        (
            {
                "StringEquals": {"dynamodb:ReturnValues": "ALL_NEW"},
                "NumericLessThan": {"dynamodb:ReturnValues": "1"},
            },
            False,
        ),
    ],
)
def test_condition_operators(block: dict[str, Any], expected: bool | str) -> None:
    verdict = condition_holds(block, CONTEXT)
    if expected == UNSUPPORTED:
        assert isinstance(verdict, Unsupported), verdict
    else:
        assert verdict is expected


def test_an_undeterminable_context_value_is_never_true() -> None:
    context = {"dynamodb:leadingkeys": Undeterminable("no partition key value")}
    for operator in ("ForAllValues:StringLike", "ForAnyValue:StringNotEquals"):
        verdict = condition_holds({operator: {"dynamodb:LeadingKeys": "*"}}, context)
        assert isinstance(verdict, Unsupported)
        assert "no partition key value" in verdict.reason


# --------------------------------------------------------------------------
# Statements and policies
# --------------------------------------------------------------------------


def _policy(*statements: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    return "p", {"Version": "2012-10-17", "Statement": list(statements)}


GET_T = Check("dynamodb:GetItem", f"{TABLE_ARN}/t", dict(CONTEXT))


@pytest.mark.parametrize(
    ("pattern", "arn", "expected"),
    [
        ("*", "*", True),
        (f"{TABLE_ARN}/t", "*", False),
        ("arn:aws:dynamodb:*:*:table/t", f"{TABLE_ARN}/t", True),
        ("arn:aws:dynamodb:*:table/t", f"{TABLE_ARN}/t", False),  # * stays in its segment
        ("arn:aws:dynamodb:*:*:table/t", f"{TABLE_ARN}/t/index/i", False),
        ("arn:aws:dynamodb:*:*:table/t/*", f"{TABLE_ARN}/t/index/i", True),
        ("arn:aws:dynamodb:*:*:table/T", f"{TABLE_ARN}/t", False),
        ("arn:aws:s3:::b/in/*", "arn:aws:s3:::b/in/x/y", True),
        ("arn:aws:s3:::b/in/?", "arn:aws:s3:::b/in/xy", False),
    ],
)
def test_resource_patterns(pattern: str, arn: str, expected: bool) -> None:
    assert resource_matches(pattern, arn) is expected


@pytest.mark.parametrize(
    ("policies", "outcome"),
    [
        ([_policy({"Effect": "Allow", "Action": "dynamodb:GetItem", "Resource": "*"})], "ALLOWED"),
        ([_policy({"Effect": "Allow", "Action": "DynamoDB:get*", "Resource": "*"})], "ALLOWED"),
        (
            [_policy({"Effect": "Allow", "Action": "dynamodb:Get?", "Resource": "*"})],
            "IMPLICIT_DENY",
        ),
        ([_policy({"Effect": "Allow", "NotAction": "s3:*", "Resource": "*"})], "ALLOWED"),
        (
            [_policy({"Effect": "Allow", "NotAction": "dynamodb:*", "Resource": "*"})],
            "IMPLICIT_DENY",
        ),
        (
            [_policy({"Effect": "Allow", "Action": "*", "NotResource": f"{TABLE_ARN}/other"})],
            "ALLOWED",
        ),
        (
            [_policy({"Effect": "Allow", "Action": "*", "Resource": f"{TABLE_ARN}/u"})],
            "IMPLICIT_DENY",
        ),
        (
            [
                _policy({"Effect": "Allow", "Action": "*", "Resource": "*"}),
                _policy(
                    {"Effect": "Deny", "Action": "dynamodb:GetItem", "Resource": f"{TABLE_ARN}/t"}
                ),
            ],
            "EXPLICIT_DENY",
        ),
        (
            [
                _policy(
                    {"Effect": "Deny", "Action": "dynamodb:GetItem", "Resource": "*"},
                    {"Effect": "Allow", "Action": "*", "Resource": "*"},
                )
            ],
            "EXPLICIT_DENY",
        ),
        (
            # A Deny whose condition is false does not apply.
            [
                _policy(
                    {"Effect": "Allow", "Action": "*", "Resource": "*"},
                    {
                        "Effect": "Deny",
                        "Action": "*",
                        "Resource": "*",
                        "Condition": {"Bool": {"aws:SecureTransport": "true"}},
                    },
                )
            ],
            "ALLOWED",
        ),
        (
            # A Deny that cannot be evaluated applies (fail closed) ...
            [
                _policy(
                    {"Effect": "Allow", "Action": "*", "Resource": "*"},
                    {
                        "Effect": "Deny",
                        "Action": "*",
                        "Resource": "*",
                        "Condition": {"IpAddress": {"aws:SourceIp": "10.0.0.0/8"}},
                    },
                )
            ],
            "EXPLICIT_DENY",
        ),
        (
            # ... and an Allow that cannot be evaluated grants nothing.
            [
                _policy(
                    {
                        "Effect": "Allow",
                        "Action": "*",
                        "Resource": "*",
                        "Condition": {"StringEquals": {"aws:PrincipalTag/team": "x"}},
                    }
                )
            ],
            "IMPLICIT_DENY",
        ),
        (
            [
                _policy(
                    {
                        "Effect": "Allow",
                        "Action": "*",
                        "Resource": "arn:aws:dynamodb:*:*:table/${aws:username}",
                    }
                )
            ],
            "IMPLICIT_DENY",
        ),
        (
            # A policy variable cannot be evaluated: a Deny naming one applies.
            [
                _policy(
                    {"Effect": "Allow", "Action": "*", "Resource": "*"},
                    {
                        "Effect": "Deny",
                        "Action": "*",
                        "Resource": "arn:aws:dynamodb:*:*:table/${aws:username}",
                    },
                )
            ],
            "EXPLICIT_DENY",
        ),
        ([], "IMPLICIT_DENY"),
    ],
)
def test_policy_decisions(policies: list[tuple[str, Any]], outcome: str) -> None:
    assert decide(policies, GET_T).outcome is Outcome[outcome]


def test_statements_that_cannot_be_evaluated_are_reported() -> None:
    allow = {
        "Sid": "Narrow",
        "Effect": "Allow",
        "Action": "*",
        "Resource": "*",
        "Condition": {"NumericLessThan": {"dynamodb:ReturnValues": "1"}},
    }
    decision = decide([_policy(allow)], GET_T)
    assert decision.outcome is Outcome.IMPLICIT_DENY
    (note,) = decision.notes
    assert "'Narrow'" in note and "'NumericLessThan' is not modelled" in note
    assert "grants nothing" in note


# --------------------------------------------------------------------------
# DynamoDB requests -> checks
# --------------------------------------------------------------------------

WHERE = Where("aws", REGION, ACCOUNT)
KEYS = {
    "t": TableKeys("PK", {"by_status": "status", "local": "PK"}),
    "u": TableKeys("id"),
}


def _checks(operation: str, params: dict[str, Any]) -> list[Check]:
    return dynamodb_checks(operation, params, WHERE, KEYS.get, {"aws:securetransport": ("false",)})


def test_an_item_request_is_checked_on_its_table_with_its_context() -> None:
    (check,) = _checks(
        "UpdateItem",
        {
            "TableName": "t",
            "Key": {"PK": {"S": "w1"}, "SK": {"S": "LABEL#1"}},
            "UpdateExpression": "SET #s = :s, b.c = :c REMOVE d[0]",
            "ConditionExpression": "attribute_exists(PK)",
            "ExpressionAttributeNames": {"#s": "status"},
            "ReturnValues": "UPDATED_NEW",
        },
    )
    assert check.action == "dynamodb:UpdateItem" and check.resource == f"{TABLE_ARN}/t"
    assert check.context["dynamodb:attributes"] == ("PK", "SK", "b", "d", "status")
    assert check.context["dynamodb:leadingkeys"] == ("w1",)
    assert check.context["dynamodb:returnvalues"] == ("UPDATED_NEW",)
    assert check.context["aws:securetransport"] == ("false",)
    assert "dynamodb:select" not in check.context


def test_a_query_on_an_index_is_checked_on_the_index() -> None:
    (check,) = _checks(
        "Query",
        {
            "TableName": "t",
            "IndexName": "local",
            "KeyConditionExpression": "PK = :pk",
            "ExpressionAttributeValues": {":pk": {"S": "w1"}},
            "ProjectionExpression": "x",
            "Select": "SPECIFIC_ATTRIBUTES",
        },
    )
    assert check.resource == f"{TABLE_ARN}/t/index/local"
    assert check.context["dynamodb:leadingkeys"] == ("w1",)
    assert check.context["dynamodb:attributes"] == ("PK", "x")
    assert check.context["dynamodb:select"] == ("SPECIFIC_ATTRIBUTES",)
    # A global index keyed on another attribute: its leading keys are not modelled.
    (other,) = _checks(
        "Query",
        {
            "TableName": "t",
            "IndexName": "by_status",
            "KeyConditionExpression": "#s = :s",
            "ExpressionAttributeNames": {"#s": "status"},
            "ExpressionAttributeValues": {":s": {"S": "open"}},
        },
    )
    assert isinstance(other.context["dynamodb:leadingkeys"], Undeterminable)


def test_batches_are_checked_once_per_table_and_transactions_per_element() -> None:
    checks = _checks(
        "BatchGetItem",
        {
            "RequestItems": {
                "t": {
                    "Keys": [
                        {"PK": {"S": "a"}, "SK": {"S": "1"}},
                        {"PK": {"S": "b"}, "SK": {"S": "1"}},
                    ]
                },
                "u": {"Keys": [{"id": {"N": "7"}}], "ProjectionExpression": "id, n"},
            }
        },
    )
    assert [(c.action, c.resource) for c in checks] == [
        ("dynamodb:BatchGetItem", f"{TABLE_ARN}/t"),
        ("dynamodb:BatchGetItem", f"{TABLE_ARN}/u"),
    ]
    assert checks[0].context["dynamodb:leadingkeys"] == ("a", "b")
    assert checks[1].context["dynamodb:attributes"] == ("id", "n")
    writes = _checks(
        "TransactWriteItems",
        {
            "TransactItems": [
                {
                    "ConditionCheck": {
                        "TableName": "u",
                        "Key": {"id": {"N": "1"}},
                        "ConditionExpression": "attribute_exists(id)",
                    }
                },
                {"Put": {"TableName": "t", "Item": {"PK": {"S": "a"}, "SK": {"S": "2"}}}},
            ]
        },
    )
    assert [(c.action, c.resource) for c in writes] == [
        ("dynamodb:ConditionCheckItem", f"{TABLE_ARN}/u"),
        ("dynamodb:PutItem", f"{TABLE_ARN}/t"),
    ]


def test_operations_not_modelled_are_refused() -> None:
    with pytest.raises(NotModelled):
        _checks("DescribeContinuousBackups", {"TableName": "t"})
    with pytest.raises(NotModelled):
        _checks("GetItem", {"Key": {"PK": {"S": "a"}}})


# --------------------------------------------------------------------------
# Server mode
# --------------------------------------------------------------------------

#: Each user's policy statements.
USERS: dict[str, list[dict[str, Any]]] = {
    "table-reader": [
        {"Effect": "Allow", "Action": "dynamodb:GetItem", "Resource": f"{TABLE_ARN}/words"}
    ],
    "batch-one": [
        {"Effect": "Allow", "Action": "dynamodb:BatchGetItem", "Resource": f"{TABLE_ARN}/words"}
    ],
    "batch-both": [
        {
            "Effect": "Allow",
            "Action": "dynamodb:BatchGetItem",
            "Resource": [f"{TABLE_ARN}/words", f"{TABLE_ARN}/other"],
        }
    ],
    "index-reader": [
        {
            "Effect": "Allow",
            "Action": "dynamodb:Query",
            "Resource": f"{TABLE_ARN}/words/index/by_status",
        }
    ],
    "stream-reader": [
        {
            "Effect": "Allow",
            "Action": [
                "dynamodb:DescribeStream",
                "dynamodb:GetShardIterator",
                "dynamodb:GetRecords",
            ],
            "Resource": f"{TABLE_ARN}/words/stream/*",
        }
    ],
    "stream-no-records": [
        {
            "Effect": "Allow",
            "Action": ["dynamodb:DescribeStream", "dynamodb:GetShardIterator"],
            "Resource": f"{TABLE_ARN}/words/stream/*",
        },
        {
            "Effect": "Allow",
            "Action": "dynamodb:GetRecords",
            "Resource": f"{TABLE_ARN}/other/stream/*",
        },
    ],
    "queue-user": [
        {
            "Effect": "Allow",
            "Action": ["sqs:GetQueueUrl", "sqs:ListQueues"],
            "Resource": f"{QUEUE_ARN}:jobs",
        }
    ],
    "queue-admin": [
        {"Effect": "Allow", "Action": "sqs:ListQueues", "Resource": "*"},
        {"Effect": "Allow", "Action": "sqs:CreateQueue", "Resource": f"{QUEUE_ARN}:new-*"},
    ],
    "updater": [
        {
            "Effect": "Allow",
            "Action": "dynamodb:UpdateItem",
            "Resource": f"{TABLE_ARN}/words",
            "Condition": {
                "ForAllValues:StringLike": {"dynamodb:Attributes": ["PK", "SK", "x_*"]},
                "StringEqualsIfExists": {"dynamodb:ReturnValues": ["NONE", "UPDATED_NEW"]},
            },
        }
    ],
    "unknown-key": [
        {
            "Effect": "Allow",
            "Action": "dynamodb:GetItem",
            "Resource": f"{TABLE_ARN}/words",
            "Condition": {"StringEquals": {"aws:RequestedRegion": REGION}},
        }
    ],
    "own-partition": [
        {
            "Effect": "Allow",
            "Action": ["dynamodb:GetItem", "dynamodb:Query"],
            "Resource": f"{TABLE_ARN}/words",
            "Condition": {"ForAllValues:StringEquals": {"dynamodb:LeadingKeys": ["w1"]}},
        }
    ],
    "https-only": [
        {
            "Effect": "Allow",
            "Action": "dynamodb:GetItem",
            "Resource": f"{TABLE_ARN}/words",
            "Condition": {"Bool": {"aws:SecureTransport": "true"}},
        }
    ],
    "denied": [
        {"Effect": "Allow", "Action": "dynamodb:*", "Resource": "*"},
        {"Effect": "Deny", "Action": "dynamodb:GetItem", "Resource": f"{TABLE_ARN}/other"},
    ],
    "s3-user": [
        {"Effect": "Allow", "Action": "s3:ListBucket", "Resource": f"arn:aws:s3:::{BUCKET}"},
        {"Effect": "Allow", "Action": "s3:GetObject", "Resource": f"arn:aws:s3:::{BUCKET}/*"},
        {
            "Effect": "Allow",
            "Action": ["s3:PutObject", "s3:DeleteObject"],
            "Resource": f"arn:aws:s3:::{BUCKET}/in/*",
        },
        {"Effect": "Allow", "Action": "s3:CreateBucket", "Resource": "arn:aws:s3:::iam-new-*"},
    ],
    # moto's own check used the API names; no AWS policy grants these.
    "s3-api-names": [
        {
            "Effect": "Allow",
            "Action": ["s3:ListObjectsV2", "s3:HeadObject", "s3:HeadBucket", "s3:DeleteObjects"],
            "Resource": "*",
        }
    ],
}


@dataclass
class Enforced:
    """This module's moto server, IAM enforced, and its users' keys."""

    server: MotoServer
    log: Path
    keys: dict[str, dict[str, str]]
    installed_before_enforcing: bool

    def client(self, user: str, service: str) -> Any:
        return boto3.client(
            service, endpoint_url=self.server.url, region_name=REGION, **self.keys[user]
        )


def _admin(server: MotoServer, service: str) -> Any:
    """A client with moto's default keys, which only work while IAM is relaxed."""
    return boto3.client(
        service,
        endpoint_url=server.url,
        region_name=REGION,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


def _create_user(server: MotoServer, name: str, statements: list[dict[str, Any]]) -> dict[str, str]:
    document = {"Version": "2012-10-17", "Statement": statements}
    keys = create_user_keys(server.url, {}, name, document)
    return {
        "aws_access_key_id": keys["AWS_ACCESS_KEY_ID"],
        "aws_secret_access_key": keys["AWS_SECRET_ACCESS_KEY"],
    }


def _create_table(ddb: Any, name: str, **extra: Any) -> None:
    ddb.create_table(
        TableName=name,
        KeySchema=[
            {"AttributeName": "PK", "KeyType": "HASH"},
            {"AttributeName": "SK", "KeyType": "RANGE"},
        ],
        AttributeDefinitions=[
            {"AttributeName": "PK", "AttributeType": "S"},
            {"AttributeName": "SK", "AttributeType": "S"},
            {"AttributeName": "status", "AttributeType": "S"},
        ],
        BillingMode="PAY_PER_REQUEST",
        StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
        **extra,
    )


@pytest.fixture(scope="module")
def enforced(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Enforced]:
    log = tmp_path_factory.mktemp("moto-iam") / "moto.log"
    server = MotoServer.start(log=log)
    try:
        ddb = _admin(server, "dynamodb")
        by_status = {
            "IndexName": "by_status",
            "KeySchema": [{"AttributeName": "status", "KeyType": "HASH"}],
            "Projection": {"ProjectionType": "ALL"},
        }
        _create_table(ddb, "words", GlobalSecondaryIndexes=[by_status])
        _create_table(ddb, "other", GlobalSecondaryIndexes=[by_status])
        for table in ("words", "other"):
            ddb.put_item(
                TableName=table,
                Item={"PK": {"S": "w1"}, "SK": {"S": "LABEL#1"}, "status": {"S": "open"}},
            )
        sqs = _admin(server, "sqs")
        for queue in ("jobs", "other-jobs"):
            sqs.create_queue(QueueName=queue)
        s3 = _admin(server, "s3")
        s3.create_bucket(Bucket=BUCKET)
        for key in ("in/a", "in/b", "out/c"):
            s3.put_object(Bucket=BUCKET, Key=key, Body=b"x")
        keys = {name: _create_user(server, name, statements) for name, statements in USERS.items()}
        installed = "IAM fidelity layer installed" in log.read_text()
        server.enforce_iam()
        yield Enforced(server, log, keys, installed)
    finally:
        server.stop()


def _denied(call: Callable[[], Any]) -> str:
    """The error code of a call that must be refused with 403."""
    with pytest.raises(ClientError) as caught:
        call()
    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    return str(caught.value.response["Error"]["Code"])


KEY = {"PK": {"S": "w1"}, "SK": {"S": "LABEL#1"}}


def test_the_layer_is_installed_only_when_iam_is_enforced(enforced: Enforced) -> None:
    assert not enforced.installed_before_enforcing
    assert "IAM fidelity layer installed" in enforced.log.read_text()


def test_a_table_scoped_grant_allows_that_table_only(enforced: Enforced) -> None:
    ddb = enforced.client("table-reader", "dynamodb")
    assert ddb.get_item(TableName="words", Key=KEY)["Item"]["status"] == {"S": "open"}
    assert _denied(lambda: ddb.get_item(TableName="other", Key=KEY)) == "AccessDeniedException"
    # The grant is GetItem only.
    assert _denied(lambda: ddb.put_item(TableName="words", Item=KEY)) == "AccessDeniedException"


def test_batch_get_needs_every_table_it_names(enforced: Enforced) -> None:
    request = {"words": {"Keys": [KEY]}, "other": {"Keys": [KEY]}}
    one = enforced.client("batch-one", "dynamodb")
    assert one.batch_get_item(RequestItems={"words": {"Keys": [KEY]}})["Responses"]["words"]
    assert _denied(lambda: one.batch_get_item(RequestItems=request)) == "AccessDeniedException"
    both = enforced.client("batch-both", "dynamodb")
    assert len(both.batch_get_item(RequestItems=request)["Responses"]) == 2


def test_an_index_scoped_grant_allows_queries_on_that_index_only(enforced: Enforced) -> None:
    ddb = enforced.client("index-reader", "dynamodb")
    query = {
        "KeyConditionExpression": "#s = :s",
        "ExpressionAttributeNames": {"#s": "status"},
        "ExpressionAttributeValues": {":s": {"S": "open"}},
    }
    assert ddb.query(TableName="words", IndexName="by_status", **query)["Count"] == 1
    assert (
        _denied(lambda: ddb.query(TableName="other", IndexName="by_status", **query))
        == "AccessDeniedException"
    )
    on_table = {
        "KeyConditionExpression": "PK = :p",
        "ExpressionAttributeValues": {":p": {"S": "w1"}},
    }
    assert _denied(lambda: ddb.query(TableName="words", **on_table)) == "AccessDeniedException"


def _shard_iterator(streams: Any, ddb_admin: Any) -> str:
    arn = ddb_admin.describe_table(TableName="words")["Table"]["LatestStreamArn"]
    (shard,) = streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"]
    return str(
        streams.get_shard_iterator(
            StreamArn=arn, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
    )


def test_get_records_is_authorised_on_the_iterator_s_stream(enforced: Enforced) -> None:
    admin = enforced.client("denied", "dynamodb")  # dynamodb:* except GetItem on other
    reader = enforced.client("stream-reader", "dynamodbstreams")
    records = reader.get_records(ShardIterator=_shard_iterator(reader, admin))["Records"]
    assert records and records[0]["eventName"] == "INSERT"
    other = enforced.client("stream-no-records", "dynamodbstreams")
    iterator = _shard_iterator(other, admin)
    assert _denied(lambda: other.get_records(ShardIterator=iterator)) == "AccessDeniedException"
    assert _denied(lambda: other.list_streams()) == "AccessDeniedException"


def test_queue_urls_are_authorised_on_the_queue_s_arn(enforced: Enforced) -> None:
    sqs = enforced.client("queue-user", "sqs")
    assert sqs.get_queue_url(QueueName="jobs")["QueueUrl"].endswith("/jobs")
    assert _denied(lambda: sqs.get_queue_url(QueueName="other-jobs")) == "AccessDenied"
    assert _denied(lambda: sqs.get_queue_url(QueueName="missing")) == "AccessDenied"
    assert _denied(lambda: sqs.create_queue(QueueName="jobs")) == "AccessDenied"
    # ListQueues has no resource: a grant on a queue's ARN does not cover it.
    assert _denied(lambda: sqs.list_queues()) == "AccessDenied"


def test_create_queue_and_list_queues_need_their_own_grants(enforced: Enforced) -> None:
    sqs = enforced.client("queue-admin", "sqs")
    assert sqs.create_queue(QueueName="new-one")["QueueUrl"].endswith("/new-one")
    assert _denied(lambda: sqs.create_queue(QueueName="old-one")) == "AccessDenied"
    urls = sqs.list_queues()["QueueUrls"]
    assert {url.rsplit("/", 1)[1] for url in urls} >= {"jobs", "other-jobs", "new-one"}


def test_attribute_and_return_values_conditions_of_an_update(enforced: Enforced) -> None:
    ddb = enforced.client("updater", "dynamodb")

    def update(expression: str, value: str = "done", **extra: Any) -> Any:
        return ddb.update_item(
            TableName="words",
            Key=KEY,
            UpdateExpression=expression,
            ExpressionAttributeValues={":v": {"S": value}},
            **extra,
        )

    update("SET x_status = :v")
    answer = update("SET x_status = :v", "again", ReturnValues="UPDATED_NEW")
    assert answer["Attributes"] == {"x_status": {"S": "again"}}
    assert _denied(lambda: update("SET other = :v")) == "AccessDeniedException"
    assert _denied(lambda: update("SET x_a = :v REMOVE status")) == "AccessDeniedException"
    assert (
        _denied(lambda: update("SET x_status = :v", ReturnValues="ALL_NEW"))
        == "AccessDeniedException"
    )


def test_an_unknown_condition_key_denies_and_says_which(enforced: Enforced) -> None:
    ddb = enforced.client("unknown-key", "dynamodb")
    assert _denied(lambda: ddb.get_item(TableName="words", Key=KEY)) == "AccessDeniedException"
    wait_for(
        lambda: "condition key 'aws:RequestedRegion' is not modelled" in enforced.log.read_text(),
        10,
        what="the log line naming the unknown condition key",
    )


def test_leading_keys_and_secure_transport_come_from_the_request(enforced: Enforced) -> None:
    ddb = enforced.client("own-partition", "dynamodb")
    assert ddb.get_item(TableName="words", Key=KEY)["Item"]
    other_partition = {**KEY, "PK": {"S": "w2"}}
    assert _denied(lambda: ddb.get_item(TableName="words", Key=other_partition)) == (
        "AccessDeniedException"
    )

    def query(pk: str) -> Any:
        return ddb.query(
            TableName="words",
            KeyConditionExpression="#p = :p AND begins_with(SK, :s)",
            ExpressionAttributeNames={"#p": "PK"},
            ExpressionAttributeValues={":p": {"S": pk}, ":s": {"S": "LABEL#"}},
        )

    assert query("w1")["Count"] == 1
    assert _denied(lambda: query("w2")) == "AccessDeniedException"
    # The server speaks plain http: aws:SecureTransport is false.
    https_only = enforced.client("https-only", "dynamodb")
    assert _denied(lambda: https_only.get_item(TableName="words", Key=KEY)) == (
        "AccessDeniedException"
    )


def test_an_explicit_deny_wins_over_an_allow(enforced: Enforced) -> None:
    ddb = enforced.client("denied", "dynamodb")
    assert ddb.get_item(TableName="words", Key=KEY)["Item"]
    assert _denied(lambda: ddb.get_item(TableName="other", Key=KEY)) == "AccessDeniedException"
    ddb.put_item(TableName="other", Item={**KEY, "SK": {"S": "LABEL#2"}})  # only GetItem is denied


def test_s3_calls_are_checked_under_their_iam_actions(enforced: Enforced) -> None:
    s3 = enforced.client("s3-user", "s3")
    assert s3.list_objects_v2(Bucket=BUCKET)["KeyCount"] == 3
    s3.head_bucket(Bucket=BUCKET)
    s3.head_object(Bucket=BUCKET, Key="out/c")
    assert s3.get_object(Bucket=BUCKET, Key="out/c")["Body"].read() == b"x"
    s3.put_object(Bucket=BUCKET, Key="in/new", Body=b"y")
    assert _denied(lambda: s3.put_object(Bucket=BUCKET, Key="out/new", Body=b"y")) == "AccessDenied"
    answer = s3.delete_objects(
        Bucket=BUCKET, Delete={"Objects": [{"Key": "in/a"}, {"Key": "out/c"}]}
    )
    assert [d["Key"] for d in answer["Deleted"]] == ["in/a"]
    assert [(e["Key"], e["Code"]) for e in answer["Errors"]] == [("out/c", "AccessDenied")]
    s3.create_bucket(Bucket="iam-new-1")
    assert _denied(lambda: s3.create_bucket(Bucket="iam-other-1")) == "AccessDenied"


def test_s3_api_names_grant_nothing(enforced: Enforced) -> None:
    s3 = enforced.client("s3-api-names", "s3")
    assert _denied(lambda: s3.list_objects_v2(Bucket=BUCKET)) == "AccessDenied"
    assert _denied(lambda: s3.head_object(Bucket=BUCKET, Key="in/b")) == "403"  # HEAD: no body
    assert _denied(lambda: s3.head_bucket(Bucket=BUCKET)) == "403"
    answer = s3.delete_objects(Bucket=BUCKET, Delete={"Objects": [{"Key": "in/b"}]})
    assert [(e["Key"], e["Code"]) for e in answer["Errors"]] == [("in/b", "AccessDenied")]


def test_relaxing_and_enforcing_again(enforced: Enforced) -> None:
    admin = _admin(enforced.server, "dynamodb")
    assert _denied(lambda: admin.list_tables()) == "InvalidClientTokenId"  # no IAM user's keys
    enforced.server.relax_iam()
    try:
        assert set(admin.list_tables()["TableNames"]) >= {"words", "other"}
    finally:
        enforced.server.enforce_iam()
    ddb = enforced.client("table-reader", "dynamodb")
    assert _denied(lambda: ddb.get_item(TableName="other", Key=KEY)) == "AccessDeniedException"


def test_enforcement_from_the_environment_at_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # moto lets this many requests through first: create_queue x2, then the user's three.
    monkeypatch.setenv("INITIAL_NO_AUTH_ACTION_COUNT", "5")
    server = MotoServer.start(log=tmp_path / "moto.log")
    monkeypatch.delenv("INITIAL_NO_AUTH_ACTION_COUNT")
    try:
        sqs = _admin(server, "sqs")
        for queue in ("jobs", "other-jobs"):
            sqs.create_queue(QueueName=queue)
        keys = _create_user(server, "queue-user", USERS["queue-user"])
        user = boto3.client("sqs", endpoint_url=server.url, region_name=REGION, **keys)
        assert user.get_queue_url(QueueName="jobs")["QueueUrl"].endswith("/jobs")
        assert _denied(lambda: user.get_queue_url(QueueName="other-jobs")) == "AccessDenied"
        # moto's default keys are no IAM user's.
        assert _denied(lambda: sqs.list_queues()) == "InvalidClientTokenId"
    finally:
        server.stop()
    assert "INITIAL_NO_AUTH_ACTION_COUNT" not in os.environ
