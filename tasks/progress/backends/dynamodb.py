"""Progress in the DynamoDB lock table: the item ``progress:collection:{collection}``.

The lock items themselves are never touched; a conditional write keeps the
record with the highest fence.
"""

from __future__ import annotations

from typing import Any

from chromasync.core.config import AwsSettings
from tasks.progress.backend import AppliedBatch, ProgressStore, progress_name


class DynamoDBProgressStore(ProgressStore):
    """Progress items in the DynamoDB lock table (key attribute ``lock_name``)."""

    def __init__(self, table: str, aws: AwsSettings, config: Any | None = None) -> None:
        import boto3
        from botocore.config import Config

        from tasks.locks.backends.dynamodb import DEFAULT_CONFIG, KEY_ATTRIBUTE

        self.table = table
        self.key_attribute = KEY_ATTRIBUTE
        merged = DEFAULT_CONFIG.merge(config) if isinstance(config, Config) else DEFAULT_CONFIG
        self._client: Any = boto3.client("dynamodb", config=merged, **aws.client_kwargs())
        self.where = f"DynamoDB lock table {table!r} at {self._client.meta.endpoint_url}"

    def record(self, applied: AppliedBatch) -> bool:
        try:
            self._client.put_item(
                TableName=self.table,
                Item={
                    self.key_attribute: {"S": progress_name(applied.collection)},
                    "fence": {"N": str(applied.fence)},
                    "record": {"S": applied.to_json()},
                },
                ConditionExpression="attribute_not_exists(fence) OR fence < :fence",
                ExpressionAttributeValues={":fence": {"N": str(applied.fence)}},
            )
        except self._client.exceptions.ConditionalCheckFailedException:
            return False
        return True

    def last(self, collection: str) -> AppliedBatch | None:
        item = self._client.get_item(
            TableName=self.table,
            Key={self.key_attribute: {"S": progress_name(collection)}},
            ConsistentRead=True,
        ).get("Item")
        if not item or "record" not in item:
            return None
        return AppliedBatch.from_json(item["record"]["S"])

    def close(self) -> None:
        self._client.close()
