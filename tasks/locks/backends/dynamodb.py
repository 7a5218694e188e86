"""Lock leases in a DynamoDB table: one item per lock, changed only by conditional writes.

Why this shape:

* Each lock is one item keyed by ``lock_name``. Acquire, extend and release are
  single ``UpdateItem`` calls with a ``ConditionExpression``, so DynamoDB
  decides atomically who wins; no read-then-write races.
* The item is never deleted: release only REMOVEs ``owner`` and ``expires_at``
  and keeps the ``fence`` counter, which ``ADD`` bumps on every acquisition. Do
  not enable DynamoDB TTL on this table; deleting an item would reset its fence.
* Clock assumption: DynamoDB has no server-side expiry at this granularity, so
  ``expires_at`` is epoch seconds computed from the *workers'* wall clocks
  (``time.time()``). A worker with a fast clock may take a lock early, one with
  a slow clock may believe its lease lasts longer. Clock skew between workers
  (keep them on NTP) must be well under ``CHROMASYNC_LOCK_SAFETY_MARGIN``; the
  worker stops writing that margin before its lease ends.
* Extend and release also require the lease not to have expired yet, matching
  the Redis backend, where an expired key is simply gone: once a lease has run
  out, its holder has lost it even if nobody has taken the lock since.
* Unreachable endpoints and throttling (after botocore's own retries) surface
  as :class:`LockBackendError`, which callers treat as transient.
* The table is made by ``chromasync provision`` (:data:`LOCK_TABLE_SCHEMA`);
  here it is only used, and a missing one is
  :class:`~chromasync.core.resources.MissingResource`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TypeVar

import boto3
from botocore.config import Config
from botocore.exceptions import (
    ClientError,
    ConnectionClosedError,
    EndpointConnectionError,
    HTTPClientError,
)
from botocore.exceptions import ConnectionError as BotoConnectionError

from chromasync.core.config import AwsSettings
from chromasync.core.resources import naming_missing_table
from tasks.locks.backend import Lease, LockBackend, LockBackendError, LockInfo

#: Partition key (type S) of the lock table: the lock's name.
KEY_ATTRIBUTE = "lock_name"
#: ``CreateTable`` arguments of the lock table, for provisioning (on-demand billing).
LOCK_TABLE_SCHEMA: dict[str, Any] = {
    "AttributeDefinitions": [{"AttributeName": KEY_ATTRIBUTE, "AttributeType": "S"}],
    "KeySchema": [{"AttributeName": KEY_ATTRIBUTE, "KeyType": "HASH"}],
    "BillingMode": "PAY_PER_REQUEST",
}
#: Timeouts and retries for lock calls: short enough that a dead endpoint fails
#: within seconds, with botocore's standard retry mode absorbing brief throttling.
DEFAULT_CONFIG = Config(
    connect_timeout=5,
    read_timeout=10,
    retries={"mode": "standard", "max_attempts": 3},
)
#: Error codes meaning "try again later" rather than "the request is wrong".
TRANSIENT_ERROR_CODES = frozenset(
    {
        "ProvisionedThroughputExceededException",
        "ThrottlingException",
        "RequestLimitExceeded",
        "InternalServerError",
    }
)
_CONDITION_FAILED = "ConditionalCheckFailedException"
#: Transport failures: no answer, a dropped connection or a timeout (named ones listed for
#: the reader; the two base classes cover the rest).
_UNREACHABLE = (
    EndpointConnectionError,
    ConnectionClosedError,
    BotoConnectionError,
    HTTPClientError,
)
#: ``owner`` is a DynamoDB reserved word, so expressions refer to it as ``#owner``.
_NAMES = {"#owner": "owner"}

_T = TypeVar("_T")


def _number(value: float) -> dict[str, str]:
    return {"N": f"{value:.6f}"}


def _check_ttl(ttl: float) -> None:
    if ttl <= 0:
        raise ValueError(f"lock ttl must be positive, got {ttl}")


class DynamoDBLockBackend(LockBackend):
    """Lock leases kept in a DynamoDB table (``dynamodb://TABLE`` URL)."""

    def __init__(
        self,
        table: str,
        aws: AwsSettings | None = None,
        *,
        config: Config | None = None,
    ) -> None:
        """``config`` is merged over :data:`DEFAULT_CONFIG` (e.g. shorter timeouts in tests)."""
        self.table = table
        aws = aws if aws is not None else AwsSettings.from_env()
        merged = DEFAULT_CONFIG.merge(config) if config is not None else DEFAULT_CONFIG
        self._client: Any = boto3.client("dynamodb", config=merged, **aws.client_kwargs())

    @property
    def where(self) -> str:
        return f"DynamoDB lock table {self.table!r} at {self._client.meta.endpoint_url}"

    def _call(self, what: str, call: Callable[[], _T]) -> _T:
        """Run one DynamoDB request, turning transport and throttling failures into
        LockBackendError; other errors (including failed conditions) pass through."""
        try:
            with naming_missing_table(self._client, self.table):
                return call()
        except _UNREACHABLE as exc:
            raise LockBackendError(f"{self.where} is unreachable during {what}: {exc}") from exc
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code in TRANSIENT_ERROR_CODES:
                raise LockBackendError(
                    f"{self.where} is overloaded or failing ({code}) during {what}; retry later"
                ) from exc
            raise

    def _update(self, what: str, **request: Any) -> dict[str, Any] | None:
        """A conditional UpdateItem; None when the condition did not hold."""
        try:
            return self._call(
                what, lambda: self._client.update_item(TableName=self.table, **request)
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == _CONDITION_FAILED:
                return None
            raise

    def acquire(self, name: str, owner: str, ttl: float) -> Lease | None:
        _check_ttl(ttl)
        now = time.time()
        response = self._update(
            f"acquire of lock {name!r}",
            Key={KEY_ATTRIBUTE: {"S": name}},
            UpdateExpression=(
                "SET #owner = :owner, expires_at = :expires, acquired_at = :now ADD fence :one"
            ),
            ConditionExpression="attribute_not_exists(#owner) OR expires_at < :now",
            ExpressionAttributeNames=_NAMES,
            ExpressionAttributeValues={
                ":owner": {"S": owner},
                ":expires": _number(now + ttl),
                ":now": _number(now),
                ":one": {"N": "1"},
            },
            ReturnValues="ALL_NEW",
        )
        if response is None:
            return None
        fence = int(response["Attributes"]["fence"]["N"])
        return Lease(name=name, owner=owner, ttl=ttl, fence=fence)

    def extend(self, lease: Lease, ttl: float) -> bool:
        _check_ttl(ttl)
        now = time.time()
        response = self._update(
            f"extend of lock {lease.name!r}",
            Key={KEY_ATTRIBUTE: {"S": lease.name}},
            UpdateExpression="SET expires_at = :expires",
            ConditionExpression="#owner = :owner AND expires_at >= :now",
            ExpressionAttributeNames=_NAMES,
            ExpressionAttributeValues={
                ":owner": {"S": lease.owner},
                ":expires": _number(now + ttl),
                ":now": _number(now),
            },
        )
        return response is not None

    def release(self, lease: Lease) -> bool:
        response = self._update(
            f"release of lock {lease.name!r}",
            Key={KEY_ATTRIBUTE: {"S": lease.name}},
            UpdateExpression="REMOVE #owner, expires_at",
            ConditionExpression="#owner = :owner AND expires_at >= :now",
            ExpressionAttributeNames=_NAMES,
            ExpressionAttributeValues={
                ":owner": {"S": lease.owner},
                ":now": _number(time.time()),
            },
        )
        return response is not None

    def info(self, name: str) -> LockInfo:
        response = self._call(
            f"info of lock {name!r}",
            lambda: self._client.get_item(
                TableName=self.table, Key={KEY_ATTRIBUTE: {"S": name}}, ConsistentRead=True
            ),
        )
        item = response.get("Item", {})
        fence = int(item["fence"]["N"]) if "fence" in item else 0
        owner = item.get("owner", {}).get("S")
        expires_at = float(item["expires_at"]["N"]) if "expires_at" in item else None
        remaining = expires_at - time.time() if expires_at is not None else None
        if owner is None or remaining is None or remaining <= 0:
            # Expired leases are free, whatever the item still says.
            return LockInfo(name=name, owner=None, remaining=None, fence=fence)
        return LockInfo(name=name, owner=owner, remaining=remaining, fence=fence)

    def close(self) -> None:
        self._client.close()
