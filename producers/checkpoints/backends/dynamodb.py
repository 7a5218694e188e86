"""Checkpoints in a DynamoDB table: one item per shard, keyed ``shard``.

The table is made by ``chromasync provision`` (:data:`CHECKPOINT_TABLE_SCHEMA`);
the poller only reads and writes items, and a missing table is
:class:`~chromasync.core.resources.MissingResource`. Reads are consistent, so a
restarted poller sees the checkpoint its predecessor wrote last.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from chromasync.core.config import AwsSettings
from chromasync.core.resources import naming_missing_table
from producers.checkpoints.backend import CheckpointStore, shard_key

#: Key schema of the DynamoDB checkpoint table (``CreateTable`` arguments, for provisioning).
CHECKPOINT_TABLE_SCHEMA: dict[str, Any] = {
    "KeySchema": [{"AttributeName": "shard", "KeyType": "HASH"}],
    "AttributeDefinitions": [{"AttributeName": "shard", "AttributeType": "S"}],
    "BillingMode": "PAY_PER_REQUEST",
}

_T = TypeVar("_T")


class DynamoDBCheckpointStore(CheckpointStore):
    """Checkpoints kept in a DynamoDB table (``dynamodb://TABLE`` URL)."""

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
        return {"shard": {"S": shard_key(stream_arn, shard_id)}}

    def _item(self, stream_arn: str, shard_id: str) -> dict[str, Any]:
        response = self._call(
            lambda: self.client.get_item(
                TableName=self.table, Key=self._key(stream_arn, shard_id), ConsistentRead=True
            )
        )
        item: dict[str, Any] = response.get("Item", {})
        return item

    def _set(self, stream_arn: str, shard_id: str, attribute: str, value: dict[str, Any]) -> None:
        self._call(
            lambda: self.client.update_item(
                TableName=self.table,
                Key=self._key(stream_arn, shard_id),
                UpdateExpression=f"SET {attribute} = :v",
                ExpressionAttributeValues={":v": value},
            )
        )

    def get(self, stream_arn: str, shard_id: str) -> str | None:
        item = self._item(stream_arn, shard_id)
        return item["sequence_number"]["S"] if "sequence_number" in item else None

    def put(self, stream_arn: str, shard_id: str, sequence_number: str) -> None:
        self._set(stream_arn, shard_id, "sequence_number", {"S": sequence_number})

    def mark_closed(self, stream_arn: str, shard_id: str) -> None:
        self._set(stream_arn, shard_id, "closed", {"BOOL": True})

    def is_closed(self, stream_arn: str, shard_id: str) -> bool:
        item = self._item(stream_arn, shard_id)
        return bool(item.get("closed", {}).get("BOOL", False))

    def close(self) -> None:
        self.client.close()
