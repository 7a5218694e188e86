"""Per-shard checkpoints of the stream poller, in DynamoDB or Redis.

A checkpoint is the sequence number of the last record of a shard whose
changes were all published. The poller resumes *after* it, so a killed
poller re-sends at most the batch it was working on (the worker is
idempotent) and never skips a record.

Chosen by ``CHROMASYNC_CHECKPOINT_URL``: ``dynamodb://TABLE`` (default
``dynamodb://chromasync-checkpoints``) or ``redis://HOST:PORT/DB``. The
DynamoDB table is made by ``chromasync provision``
(:data:`CHECKPOINT_TABLE_SCHEMA`); the poller only reads and writes items,
and a missing table is :class:`~chromasync.core.resources.MissingResource`.
"""

from __future__ import annotations

import abc
import os
from collections.abc import Callable, Mapping
from typing import Any, TypeVar
from urllib.parse import urlparse

from chromasync.core.config import AwsSettings, ConfigError, env_url
from chromasync.core.resources import naming_missing_table

#: Where checkpoints live unless ``CHROMASYNC_CHECKPOINT_URL`` says otherwise.
DEFAULT_CHECKPOINT_URL = "dynamodb://chromasync-checkpoints"
#: Key schema of the DynamoDB checkpoint table (``CreateTable`` arguments, for provisioning).
CHECKPOINT_TABLE_SCHEMA: dict[str, Any] = {
    "KeySchema": [{"AttributeName": "shard", "KeyType": "HASH"}],
    "AttributeDefinitions": [{"AttributeName": "shard", "AttributeType": "S"}],
    "BillingMode": "PAY_PER_REQUEST",
}

_T = TypeVar("_T")


class CheckpointStore(abc.ABC):
    """Remembers, per stream and shard, the last fully published sequence."""

    @abc.abstractmethod
    def get(self, stream_arn: str, shard_id: str) -> str | None: ...

    @abc.abstractmethod
    def put(self, stream_arn: str, shard_id: str, sequence_number: str) -> None: ...

    @abc.abstractmethod
    def mark_closed(self, stream_arn: str, shard_id: str) -> None: ...

    @abc.abstractmethod
    def is_closed(self, stream_arn: str, shard_id: str) -> bool: ...


class DynamoDBCheckpointStore(CheckpointStore):
    def __init__(self, aws: AwsSettings, table: str) -> None:
        import boto3

        self.table = table
        self.client = boto3.client("dynamodb", **aws.client_kwargs())

    def _call(self, call: Callable[[], _T]) -> _T:
        """One request; a missing table becomes MissingResource naming it."""
        with naming_missing_table(self.client, self.table):
            return call()

    @staticmethod
    def _key(stream_arn: str, shard_id: str) -> dict[str, Any]:
        return {"shard": {"S": f"{stream_arn}|{shard_id}"}}

    def _item(self, stream_arn: str, shard_id: str) -> dict[str, Any]:
        response = self._call(
            lambda: self.client.get_item(
                TableName=self.table, Key=self._key(stream_arn, shard_id), ConsistentRead=True
            )
        )
        item: dict[str, Any] = response.get("Item", {})
        return item

    def get(self, stream_arn: str, shard_id: str) -> str | None:
        item = self._item(stream_arn, shard_id)
        return item["sequence_number"]["S"] if "sequence_number" in item else None

    def put(self, stream_arn: str, shard_id: str, sequence_number: str) -> None:
        self._call(
            lambda: self.client.update_item(
                TableName=self.table,
                Key=self._key(stream_arn, shard_id),
                UpdateExpression="SET sequence_number = :s",
                ExpressionAttributeValues={":s": {"S": sequence_number}},
            )
        )

    def mark_closed(self, stream_arn: str, shard_id: str) -> None:
        self._call(
            lambda: self.client.update_item(
                TableName=self.table,
                Key=self._key(stream_arn, shard_id),
                UpdateExpression="SET closed = :t",
                ExpressionAttributeValues={":t": {"BOOL": True}},
            )
        )

    def is_closed(self, stream_arn: str, shard_id: str) -> bool:
        item = self._item(stream_arn, shard_id)
        return bool(item.get("closed", {}).get("BOOL", False))


class RedisCheckpointStore(CheckpointStore):
    def __init__(self, url: str, prefix: str = "chromasync:checkpoint:") -> None:
        import redis

        self.client = redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5)
        self.prefix = prefix

    def _key(self, stream_arn: str, shard_id: str) -> str:
        return f"{self.prefix}{stream_arn}|{shard_id}"

    def get(self, stream_arn: str, shard_id: str) -> str | None:
        value = self.client.hget(self._key(stream_arn, shard_id), "sequence_number")
        return value.decode() if isinstance(value, bytes) else None

    def put(self, stream_arn: str, shard_id: str, sequence_number: str) -> None:
        self.client.hset(self._key(stream_arn, shard_id), "sequence_number", sequence_number)

    def mark_closed(self, stream_arn: str, shard_id: str) -> None:
        self.client.hset(self._key(stream_arn, shard_id), "closed", "1")

    def is_closed(self, stream_arn: str, shard_id: str) -> bool:
        return self.client.hget(self._key(stream_arn, shard_id), "closed") == b"1"


def _checkpoint_location(env: Mapping[str, str]) -> tuple[str, str | None]:
    """``CHROMASYNC_CHECKPOINT_URL`` and the DynamoDB table it names (None for Redis)."""
    url = env_url(env, "CHROMASYNC_CHECKPOINT_URL", DEFAULT_CHECKPOINT_URL, {"dynamodb", "redis"})
    assert url is not None
    parsed = urlparse(url)
    if parsed.scheme == "redis":
        return url, None
    table = parsed.netloc or parsed.path.lstrip("/")
    if not table:
        raise ConfigError(f"CHROMASYNC_CHECKPOINT_URL={url!r} names no table (dynamodb://TABLE)")
    return url, table


def checkpoint_table(env: Mapping[str, str] | None = None) -> str | None:
    """The DynamoDB table ``CHROMASYNC_CHECKPOINT_URL`` names (for provisioning); None for Redis."""
    return _checkpoint_location(os.environ if env is None else env)[1]


def checkpoint_store_from_env(
    env: Mapping[str, str] | None = None, aws: AwsSettings | None = None
) -> CheckpointStore:
    env = os.environ if env is None else env
    url, table = _checkpoint_location(env)
    if table is None:
        return RedisCheckpointStore(url)
    return DynamoDBCheckpointStore(aws or AwsSettings.from_env(env), table)
