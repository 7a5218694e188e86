"""A request moto's server handles -> the checks AWS makes for it.

DynamoDB and Streams requests are read from their JSON body and handed to
:mod:`chromasync.motoiam.dynamodb`, with what moto's backends know (a table's
keys, a shard iterator's stream); SQS and S3 requests are resolved here, from
moto's parsed parameters. A service not modelled keeps moto's own action and
resource.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ElementTree
from collections.abc import Callable
from typing import Any
from urllib.parse import urlparse

from chromasync.motoiam.dynamodb import dynamodb_checks, stream_checks
from chromasync.motoiam.model import Check, Context, NotModelled, TableKeys, Where

#: SQS operations authorised against ``arn:aws:sqs:R:A:QUEUENAME`` from ``QueueName``,
#: whether or not the queue exists (moto used "*").
SQS_QUEUE_NAME_OPERATIONS = frozenset({"GetQueueUrl", "CreateQueue"})
#: SQS operations without resource-level permissions.
SQS_ACCOUNT_OPERATIONS = frozenset({"ListQueues"})
#: SQS batch operations have no IAM action of their own.
SQS_ACTIONS = {
    "SendMessageBatch": "SendMessage",
    "DeleteMessageBatch": "DeleteMessage",
    "ChangeMessageVisibilityBatch": "ChangeMessageVisibility",
}

#: The IAM action of each S3 API operation modelled (moto checks the API name,
#: e.g. ``s3:HeadObject``, which no AWS policy grants). DeleteObjects is
#: authorised as ``s3:DeleteObject`` once per key (:func:`_s3_checks`).
S3_ACTIONS = {
    "ListObjectsV2": "ListBucket",
    "ListObjects": "ListBucket",
    "HeadBucket": "ListBucket",
    "HeadObject": "GetObject",
    "GetObject": "GetObject",
    "PutObject": "PutObject",
    "CreateMultipartUpload": "PutObject",
    "UploadPart": "PutObject",
    "CompleteMultipartUpload": "PutObject",
    "AbortMultipartUpload": "AbortMultipartUpload",
    "ListParts": "ListMultipartUploadParts",
    "DeleteObject": "DeleteObject",
    "CreateBucket": "CreateBucket",
    "DeleteBucket": "DeleteBucket",
    "GetBucketLocation": "GetBucketLocation",
    "ListBuckets": "ListAllMyBuckets",
}
#: S3 operations without resource-level permissions.
S3_ACCOUNT_OPERATIONS = frozenset({"ListBuckets"})

#: moto service names whose operations are modelled; an operation of theirs
#: outside the tables above is denied (fail closed) rather than guessed.
MODELLED_SERVICES = frozenset({"dynamodb", "dynamodbstreams", "sqs", "s3"})


def _where(response: Any) -> Where:
    from moto.utilities.utils import get_partition

    return Where(get_partition(response.region), response.region, response.current_account)


def _json_params(response: Any) -> dict[str, Any]:
    try:
        params = json.loads(response.raw_body or b"{}")
    except ValueError as exc:
        raise NotModelled(f"the request body is not JSON: {exc}") from exc
    if not isinstance(params, dict):
        raise NotModelled("the request body is not a JSON object")
    return params


def _dynamodb_keys(where: Where) -> Callable[[str], TableKeys | None]:
    from moto.dynamodb.models import dynamodb_backends

    def keys_of(name: str) -> TableKeys | None:
        table = dynamodb_backends[where.account][where.region].tables.get(name)
        if table is None:
            return None
        indexes = {}
        for index in [*table.indexes, *table.global_indexes]:
            hashes = [k["AttributeName"] for k in index.schema if k["KeyType"] == "HASH"]
            indexes[index.name] = hashes[0] if hashes else ""
        return TableKeys(table.hash_key_attr, indexes)

    return keys_of


def _stream_of(where: Where) -> Callable[[str], str | None]:
    from moto.dynamodbstreams.models import dynamodbstreams_backends

    def stream_of(iterator: str) -> str | None:
        backend = dynamodbstreams_backends[where.account][where.region]
        if iterator not in backend.shard_iterators:
            return None
        # moto keys an iterator by "<stream ARN>|1|<id>", as AWS's iterators start.
        return iterator.split("|", 1)[0]

    return stream_of


def _delete_objects_keys(body: Any) -> list[str]:
    """The keys of a DeleteObjects (POST ?delete) request body."""
    try:
        root = ElementTree.fromstring(body)
    except (ElementTree.ParseError, TypeError) as exc:
        raise NotModelled(f"DeleteObjects body is not XML: {exc}") from exc
    keys = [
        element.text or "" for element in root.iter() if element.tag.rpartition("}")[2] == "Key"
    ]
    if not keys:
        raise NotModelled("DeleteObjects names no key")
    return keys


def _s3_checks(response: Any, operation: str | None, resource: str, base: Context) -> list[Check]:
    if operation == "DeleteObjects":  # moto passes the bucket's ARN
        keys = _delete_objects_keys(response.body)
        return [Check("s3:DeleteObject", f"{resource}/{key}", dict(base)) for key in keys]
    if operation not in S3_ACTIONS:
        raise NotModelled(f"s3:{operation} is not modelled")
    if operation in S3_ACCOUNT_OPERATIONS:
        resource = "*"
    return [Check(f"s3:{S3_ACTIONS[operation]}", resource, dict(base))]


def _sqs_checks(response: Any, operation: str | None, resource: str, base: Context) -> list[Check]:
    if operation is None:
        raise NotModelled("an SQS request moto cannot name")
    action = f"sqs:{SQS_ACTIONS.get(operation, operation)}"
    if operation in SQS_ACCOUNT_OPERATIONS:
        return [Check(action, "*", dict(base))]
    if operation in SQS_QUEUE_NAME_OPERATIONS:
        name = response._get_param("QueueName")
        if not isinstance(name, str) or not name:
            raise NotModelled(f"{operation} without QueueName")
        where = _where(response)
        account = response._get_param("QueueOwnerAWSAccountId") or where.account
        return [
            Check(action, f"arn:{where.partition}:sqs:{where.region}:{account}:{name}", dict(base))
        ]
    return [Check(action, resource, dict(base))]


def request_checks(
    response: Any, operation: str | None, moto_action: str, resource: str
) -> list[Check]:
    """The checks of the request moto's ``response`` handles; NotModelled if it cannot tell.

    ``moto_action`` and ``resource`` are what moto would check, kept for the
    services not modelled here.
    """
    secure = urlparse(str(response.uri)).scheme == "https"
    base: Context = {"aws:securetransport": ("true" if secure else "false",)}
    service = response.service_name
    if service not in MODELLED_SERVICES:
        return [Check(moto_action, resource, dict(base))]
    if service == "s3":
        return _s3_checks(response, operation, resource, base)
    if service == "sqs":
        return _sqs_checks(response, operation, resource, base)
    if operation is None:
        raise NotModelled(f"a {service} request moto cannot name")
    where = _where(response)
    if service == "dynamodbstreams":
        return stream_checks(operation, _json_params(response), _stream_of(where), base)
    return dynamodb_checks(operation, _json_params(response), where, _dynamodb_keys(where), base)
