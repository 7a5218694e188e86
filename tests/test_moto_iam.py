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


@pytest.mark.parametrize("operator", ["ForAllValues:StringLike", "ForAnyValue:StringNotEquals"])
def test_an_undeterminable_context_value_is_never_true(operator: str) -> None:
    context = {"dynamodb:leadingkeys": Undeterminable("no partition key value")}
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


@pytest.mark.parametrize(
    ("operation", "params"),
    [
        ("DescribeContinuousBackups", {"TableName": "t"}),  # an operation not modelled
        ("GetItem", {"Key": {"PK": {"S": "a"}}}),  # no table named
    ],
)
def test_requests_not_modelled_are_refused(operation: str, params: dict[str, Any]) -> None:
    with pytest.raises(NotModelled):
        _checks(operation, params)


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
#: Another item of the same partition (writing it leaves KEY's item as it is).
KEY2 = {**KEY, "SK": {"S": "LABEL#2"}}
#: boto3's error codes for a denial (see the module docstring).
DDB_DENIED = "AccessDeniedException"
SQS_DENIED = "AccessDenied"
S3_DENIED = "AccessDenied"
HEAD_DENIED = "403"  # a HEAD answer has no body to name the code

#: A request made with a user's client; what it returns must be true when it is allowed.
Call = Callable[[Any], Any]


def _get(table: str, partition: str = "w1") -> Call:
    """GetItem of the partition's item; answers the item (there is one in w1)."""
    return lambda ddb: ddb.get_item(TableName=table, Key={**KEY, "PK": {"S": partition}})["Item"]


def _query_status(table: str) -> Call:
    """A Query of the table's ``by_status`` index for status "open"; answers the count."""
    return lambda ddb: ddb.query(
        TableName=table,
        IndexName="by_status",
        KeyConditionExpression="#s = :s",
        ExpressionAttributeNames={"#s": "status"},
        ExpressionAttributeValues={":s": {"S": "open"}},
    )["Count"]


def _query_partition(partition: str) -> Call:
    """A Query of the words in one partition of the table; answers the count."""
    return lambda ddb: ddb.query(
        TableName="words",
        KeyConditionExpression="#p = :p AND begins_with(SK, :s)",
        ExpressionAttributeNames={"#p": "PK"},
        ExpressionAttributeValues={":p": {"S": partition}, ":s": {"S": "LABEL#"}},
    )["Count"]


def _update(expression: str, **extra: Any) -> Call:
    return lambda ddb: ddb.update_item(
        TableName="words",
        Key=KEY,
        UpdateExpression=expression,
        ExpressionAttributeValues={":v": {"S": "done"}},
        **extra,
    )


def _batch_get(*tables: str) -> Call:
    return lambda ddb: ddb.batch_get_item(RequestItems={t: {"Keys": [KEY]} for t in tables})


def _queue_url(name: str) -> Call:
    return lambda sqs: sqs.get_queue_url(QueueName=name)["QueueUrl"]


#: (user, request, its call, None if allowed else boto3's error code), by service:
#: what each user's policy (:data:`USERS`) allows and denies.
DYNAMODB_CASES: list[tuple[str, str, Call, str | None]] = [
    # A table-scoped grant allows that table only, and only the actions it names.
    ("table-reader", "GetItem", _get("words"), None),
    ("table-reader", "GetItem other table", _get("other"), DDB_DENIED),
    ("table-reader", "PutItem", lambda d: d.put_item(TableName="words", Item=KEY), DDB_DENIED),
    # BatchGetItem needs every table it names.
    ("batch-one", "BatchGetItem", _batch_get("words"), None),
    ("batch-one", "BatchGetItem 2 tables", _batch_get("words", "other"), DDB_DENIED),
    ("batch-both", "BatchGetItem 2 tables", _batch_get("words", "other"), None),
    # An index-scoped grant allows queries on that index only.
    ("index-reader", "Query index", _query_status("words"), None),
    ("index-reader", "Query other index", _query_status("other"), DDB_DENIED),
    ("index-reader", "Query table", _query_partition("w1"), DDB_DENIED),
    # dynamodb:Attributes and dynamodb:ReturnValues come from the update.
    ("updater", "SET x_status", _update("SET x_status = :v"), None),
    ("updater", "UPDATED_NEW", _update("SET x_status = :v", ReturnValues="UPDATED_NEW"), None),
    ("updater", "SET other", _update("SET other = :v"), DDB_DENIED),
    ("updater", "REMOVE status", _update("SET x_a = :v REMOVE status"), DDB_DENIED),
    ("updater", "ALL_NEW", _update("SET x_status = :v", ReturnValues="ALL_NEW"), DDB_DENIED),
    # dynamodb:LeadingKeys comes from the key or the key condition.
    ("own-partition", "GetItem", _get("words"), None),
    ("own-partition", "GetItem other partition", _get("words", "w2"), DDB_DENIED),
    ("own-partition", "Query", _query_partition("w1"), None),
    ("own-partition", "Query other partition", _query_partition("w2"), DDB_DENIED),
    # The server speaks plain http: aws:SecureTransport is false.
    ("https-only", "GetItem", _get("words"), DDB_DENIED),
    # An explicit deny wins over an allow, for what it names only.
    ("denied", "GetItem", _get("words"), None),
    ("denied", "GetItem denied table", _get("other"), DDB_DENIED),
    ("denied", "PutItem denied table", lambda d: d.put_item(TableName="other", Item=KEY2), None),
]
SQS_CASES: list[tuple[str, str, Call, str | None]] = [
    # Queue URLs are authorised on the queue's ARN, whether or not the queue exists.
    ("queue-user", "GetQueueUrl", _queue_url("jobs"), None),
    ("queue-user", "GetQueueUrl other", _queue_url("other-jobs"), SQS_DENIED),
    ("queue-user", "GetQueueUrl missing", _queue_url("missing"), SQS_DENIED),
    ("queue-user", "CreateQueue", lambda s: s.create_queue(QueueName="jobs"), SQS_DENIED),
    # ListQueues has no resource: a grant on a queue's ARN does not cover it.
    ("queue-user", "ListQueues", lambda s: s.list_queues(), SQS_DENIED),
    ("queue-admin", "CreateQueue", lambda s: s.create_queue(QueueName="new-one"), None),
    ("queue-admin", "CreateQueue other", lambda s: s.create_queue(QueueName="old-one"), SQS_DENIED),
    ("queue-admin", "ListQueues", lambda s: len(s.list_queues()["QueueUrls"]) >= 2, None),
]
S3_CASES: list[tuple[str, str, Call, str | None]] = [
    # S3 calls are checked under their IAM actions, which the API names do not grant.
    ("s3-user", "ListObjectsV2", lambda s: s.list_objects_v2(Bucket=BUCKET, Prefix="out/"), None),
    ("s3-user", "HeadBucket", lambda s: s.head_bucket(Bucket=BUCKET), None),
    ("s3-user", "HeadObject", lambda s: s.head_object(Bucket=BUCKET, Key="out/c"), None),
    ("s3-user", "GetObject", lambda s: s.get_object(Bucket=BUCKET, Key="out/c"), None),
    ("s3-user", "PutObject", lambda s: s.put_object(Bucket=BUCKET, Key="in/new", Body=b"y"), None),
    ("s3-user", "PutObject other", lambda s: s.put_object(Bucket=BUCKET, Key="out/new"), S3_DENIED),
    ("s3-user", "CreateBucket", lambda s: s.create_bucket(Bucket="iam-new-1"), None),
    ("s3-user", "CreateBucket other", lambda s: s.create_bucket(Bucket="iam-other-1"), S3_DENIED),
    ("s3-api-names", "ListObjectsV2", lambda s: s.list_objects_v2(Bucket=BUCKET), S3_DENIED),
    ("s3-api-names", "HeadObject", lambda s: s.head_object(Bucket=BUCKET, Key="in/b"), HEAD_DENIED),
    ("s3-api-names", "HeadBucket", lambda s: s.head_bucket(Bucket=BUCKET), HEAD_DENIED),
]
CASES = [
    pytest.param(user, service, call, denied, id=f"{user}: {what}")
    for service, cases in (("dynamodb", DYNAMODB_CASES), ("sqs", SQS_CASES), ("s3", S3_CASES))
    for user, what, call, denied in cases
]


@pytest.mark.parametrize(("user", "service", "call", "denied"), CASES)
def test_a_policy_allows_and_denies_as_aws_does(
    enforced: Enforced, user: str, service: str, call: Call, denied: str | None
) -> None:
    client = enforced.client(user, service)
    if denied is None:
        assert call(client)
    else:
        assert _denied(lambda: call(client)) == denied


def test_the_layer_is_installed_only_when_iam_is_enforced(enforced: Enforced) -> None:
    assert not enforced.installed_before_enforcing
    assert "IAM fidelity layer installed" in enforced.log.read_text()


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


def test_an_unknown_condition_key_denies_and_says_which(enforced: Enforced) -> None:
    ddb = enforced.client("unknown-key", "dynamodb")
    assert _denied(lambda: ddb.get_item(TableName="words", Key=KEY)) == "AccessDeniedException"
    wait_for(
        lambda: "condition key 'aws:RequestedRegion' is not modelled" in enforced.log.read_text(),
        10,
        what="the log line naming the unknown condition key",
    )


def test_delete_objects_is_checked_key_by_key(enforced: Enforced) -> None:
    s3 = enforced.client("s3-user", "s3")
    answer = s3.delete_objects(
        Bucket=BUCKET, Delete={"Objects": [{"Key": "in/a"}, {"Key": "out/c"}]}
    )
    assert [d["Key"] for d in answer["Deleted"]] == ["in/a"]
    assert [(e["Key"], e["Code"]) for e in answer["Errors"]] == [("out/c", "AccessDenied")]
    # moto's own check used the API name s3:DeleteObjects, which grants nothing.
    api_names = enforced.client("s3-api-names", "s3")
    answer = api_names.delete_objects(Bucket=BUCKET, Delete={"Objects": [{"Key": "in/b"}]})
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
