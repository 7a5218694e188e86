"""DynamoDB and DynamoDB Streams requests -> checks: the IAM action and the resource ARN.

Pure: the request's parameters come parsed, and what only moto knows (a table's
keys, a shard iterator's stream) through the callables given.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from chromasync.motoiam.dynamodb_context import batch_context, item_context
from chromasync.motoiam.model import Check, Context, NotModelled, TableKeys, Where

#: DynamoDB operations authorised against the table named in ``TableName`` (a
#: Query or Scan with ``IndexName`` against ``table/NAME/index/INDEX``).
DYNAMODB_TABLE_OPERATIONS = frozenset(
    {
        "GetItem",
        "PutItem",
        "UpdateItem",
        "DeleteItem",
        "Query",
        "Scan",
        "DescribeTable",
        "CreateTable",
        "DeleteTable",
        "UpdateTable",
        "UpdateTimeToLive",
        "DescribeTimeToLive",
    }
)
#: DynamoDB and Streams operations without resource-level permissions ("*").
DYNAMODB_ACCOUNT_OPERATIONS = frozenset({"ListTables", "ListStreams"})
#: The IAM action each element of a TransactWriteItems request is authorised as
#: (AWS: "Using IAM with DynamoDB transactions"; TransactGetItems' Get is GetItem).
TRANSACT_ACTIONS = {
    "Get": "GetItem",
    "Put": "PutItem",
    "Update": "UpdateItem",
    "Delete": "DeleteItem",
    "ConditionCheck": "ConditionCheckItem",
}


def _table(where: Where, name: Any) -> tuple[str, str]:
    """(table ARN, table name) of a TableName, which may itself be the table's ARN."""
    if not isinstance(name, str) or not name:
        raise NotModelled("the request names no table")
    if name.startswith("arn:"):
        return name, name.partition(":table/")[2]
    return f"arn:{where.partition}:dynamodb:{where.region}:{where.account}:table/{name}", name


def dynamodb_checks(
    operation: str,
    params: Mapping[str, Any],
    where: Where,
    keys_of: Callable[[str], TableKeys | None],
    base: Context,
) -> list[Check]:
    """The checks of a DynamoDB request (item, table, batch and transaction operations)."""
    if operation in DYNAMODB_ACCOUNT_OPERATIONS:
        return [Check(f"dynamodb:{operation}", "*", dict(base))]
    if operation in DYNAMODB_TABLE_OPERATIONS:
        arn, name = _table(where, params.get("TableName"))
        index = params.get("IndexName") if operation in ("Query", "Scan") else None
        if index:
            arn = f"{arn}/index/{index}"
        context = item_context(operation, params, keys_of(name), base)
        return [Check(f"dynamodb:{operation}", arn, context)]
    if operation in ("BatchGetItem", "BatchWriteItem"):
        requests = params.get("RequestItems")
        if not isinstance(requests, Mapping) or not requests:
            raise NotModelled(f"{operation} without RequestItems")
        checks = []
        for table_name, request in requests.items():
            arn, name = _table(where, table_name)
            checks.append(
                Check(f"dynamodb:{operation}", arn, batch_context(request, keys_of(name), base))
            )
        return checks
    if operation in ("TransactGetItems", "TransactWriteItems"):
        checks = []
        for element in params.get("TransactItems") or []:
            if not isinstance(element, Mapping) or len(element) != 1:
                raise NotModelled(f"{operation} element {element!r}")
            ((kind, request),) = element.items()
            if kind not in TRANSACT_ACTIONS or not isinstance(request, Mapping):
                raise NotModelled(f"{operation} element {kind!r}")
            action = TRANSACT_ACTIONS[kind]
            arn, name = _table(where, request.get("TableName"))
            checks.append(
                Check(f"dynamodb:{action}", arn, item_context(action, request, keys_of(name), base))
            )
        if not checks:
            raise NotModelled(f"{operation} without TransactItems")
        return checks
    raise NotModelled(f"dynamodb:{operation} is not modelled")


def stream_checks(
    operation: str,
    params: Mapping[str, Any],
    stream_of: Callable[[str], str | None],
    base: Context,
) -> list[Check]:
    """The checks of a DynamoDB Streams request (its actions are ``dynamodb:`` ones)."""
    if operation in DYNAMODB_ACCOUNT_OPERATIONS:
        return [Check(f"dynamodb:{operation}", "*", dict(base))]
    if operation in ("DescribeStream", "GetShardIterator"):
        arn = params.get("StreamArn")
        if not isinstance(arn, str):
            raise NotModelled(f"{operation} without StreamArn")
        return [Check(f"dynamodb:{operation}", arn, dict(base))]
    if operation == "GetRecords":
        iterator = params.get("ShardIterator")
        arn = stream_of(iterator) if isinstance(iterator, str) else None
        if arn is None:
            raise NotModelled("GetRecords with a shard iterator moto does not know")
        return [Check("dynamodb:GetRecords", arn, dict(base))]
    raise NotModelled(f"dynamodb:{operation} (streams) is not modelled")
