"""Resources are looked up, never created: one that is missing, or denied, is an error naming it.

Only ``chromasync provision`` (or the CloudFormation template in ``deploy/``)
creates queues, tables and buckets. Everything else — the Lambda handler, the
poller, the worker, the lock and dead-letter code — runs under a role that may
not create anything (``deploy/iam/*.json``), so it looks each resource up and,
when it is not there, raises :class:`MissingResource`, which says what is
missing, where, and which command creates it. The CLI exits with status 3 on
it; the Lambda handler lets it fail the invocation (Lambda retries the batch
once the resource exists); a worker dead-letters the batch with it. A call the
role is not allowed to make is the same kind of mistake — a deployment that
does not match ``deploy/iam`` — and becomes :class:`NotPermitted`: no retry
helps either, so neither is retried.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

#: What to do about a missing resource, appended to every :class:`MissingResource`.
PROVISION_HINT = "create it with `chromasync provision` (or deploy deploy/cloudformation.yaml)"
#: Error codes SQS (and moto) answer for a queue that does not exist.
MISSING_QUEUE_CODES = frozenset({"AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist"})
#: Error code DynamoDB answers for a table that does not exist (or is not ACTIVE yet).
MISSING_TABLE_CODE = "ResourceNotFoundException"
#: Error codes S3 answers for a bucket that does not exist (HeadBucket answers a bare 404).
MISSING_BUCKET_CODES = frozenset({"NoSuchBucket", "404", "NotFound"})
#: Error codes AWS services (and moto's IAM enforcement) answer for a call the
#: credentials may not make.
ACCESS_DENIED_CODES = frozenset({"AccessDenied", "AccessDeniedException", "403"})
#: Where the roles' permissions are written down, for :class:`NotPermitted` messages.
POLICIES_HINT = "grant it as deploy/iam/*.json do (docs/operations.md, IAM)"


class DeploymentError(RuntimeError):
    """The deployment does not match what the code needs; retrying cannot help."""


class MissingResource(DeploymentError):
    """A queue, table or bucket the system needs does not exist; provisioning creates it."""

    def __init__(self, kind: str, name: str, where: str, hint: str = PROVISION_HINT) -> None:
        self.kind = kind
        self.name = name
        self.where = where
        super().__init__(f"{kind} {name!r} does not exist at {where}; {hint}")


class NotPermitted(DeploymentError):
    """An AWS call was denied: the credentials' role lacks a permission the code needs."""

    def __init__(self, what: str, error: BaseException) -> None:
        self.what = what
        super().__init__(f"{what} was denied ({error}); {POLICIES_HINT}")


def not_permitted(exc: BaseException, what: str) -> NotPermitted | None:
    """The :class:`NotPermitted` an AWS error means, or None if it means something else."""
    if error_code(exc) in ACCESS_DENIED_CODES:
        return NotPermitted(what, exc)
    return None


def is_unreachable(exc: BaseException) -> bool:
    """An AWS endpoint (or the broker) did not answer: no connection, a dropped one, a timeout.

    What the producer side can tell without the worker's modules (``tasks.errors``
    adds Redis and Chroma for the worker).
    """
    if isinstance(exc, ConnectionError | TimeoutError):
        return True
    import botocore.exceptions as bex

    if isinstance(exc, bex.ConnectionError | bex.HTTPClientError | bex.ReadTimeoutError):
        return True
    from kombu.exceptions import OperationalError

    return isinstance(exc, OperationalError)


def error_code(exc: BaseException) -> str:
    """The AWS error code of a botocore ``ClientError`` (``""`` when it has none)."""
    response = getattr(exc, "response", None) or {}
    return str(response.get("Error", {}).get("Code", ""))


def endpoint_of(client: Any) -> str:
    """Where a boto3 client sends its requests, for messages (never credentials)."""
    meta = getattr(client, "meta", None)
    endpoint = getattr(meta, "endpoint_url", None)
    region = getattr(meta, "region_name", None)
    return str(endpoint or f"AWS ({region})")


def queue_url(sqs: Any, name: str) -> str:
    """The URL of an existing SQS queue (GetQueueUrl); :class:`MissingResource` if none."""
    from botocore.exceptions import ClientError

    try:
        return str(sqs.get_queue_url(QueueName=name)["QueueUrl"])
    except ClientError as exc:
        if error_code(exc) in MISSING_QUEUE_CODES:
            raise MissingResource("SQS queue", name, endpoint_of(sqs)) from exc
        raise


@contextlib.contextmanager
def naming_missing_table(dynamodb: Any, table: str) -> Iterator[None]:
    """Inside it, DynamoDB's answer for a missing table becomes :class:`MissingResource`
    naming ``table``; every other error passes through as it is."""
    from botocore.exceptions import ClientError

    try:
        yield
    except ClientError as exc:
        if error_code(exc) == MISSING_TABLE_CODE:
            raise MissingResource("DynamoDB table", table, endpoint_of(dynamodb)) from exc
        raise
