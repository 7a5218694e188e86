"""The COMPACTION_RUN item in the table: read it consistently, mark it merged per collection.

The run is re-read with a consistent GetItem (the message's ``new_image`` may
be missing or stale): current state wins. It is marked done per collection
(``{role}_merge_status`` and friends), so a redelivered change is skipped; the
producer ignores a MODIFY of a COMPACTION_RUN, so marking never feeds back
into the stream.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import ClientError

from chromasync.core.attributes import decode_image
from chromasync.core.entities import CollectionRole
from chromasync.core.keys import image_pk, receipt_sk
from tasks.errors import aws_error_code

log = logging.getLogger(__name__)

#: ``{role}_merge_status`` of a run whose delta is merged into that role's collection.
MERGE_COMPLETED = "COMPLETED"


def run_sk(receipt_id: int, run_id: str) -> str:
    """The sort key of a COMPACTION_RUN item."""
    return f"{receipt_sk(receipt_id)}#COMPACTION_RUN#{run_id}"


@dataclass(frozen=True)
class RunItem:
    """One COMPACTION_RUN item of the table, reached through a low-level DynamoDB client."""

    dynamodb: Any
    table: str
    image_id: str
    receipt_id: int
    run_id: str

    @property
    def key(self) -> dict[str, Any]:
        return {
            "PK": {"S": image_pk(self.image_id)},
            "SK": {"S": run_sk(self.receipt_id, self.run_id)},
        }

    def __str__(self) -> str:
        return f"run {self.run_id} of {self.image_id}/{self.receipt_id}"

    def read(self) -> dict[str, Any] | None:
        """The item's current attributes (consistent read); None once it is deleted."""
        item = self.dynamodb.get_item(TableName=self.table, Key=self.key, ConsistentRead=True)
        found = item.get("Item")
        return None if found is None else decode_image(found, "run item")

    def mark_merged(self, role: CollectionRole, count: int) -> None:
        """Record that the delta is merged into ``role``'s collection (if the run still exists)."""
        try:
            self.dynamodb.update_item(
                TableName=self.table,
                Key=self.key,
                UpdateExpression="SET #status = :status, #at = :at, #count = :count",
                ConditionExpression="attribute_exists(PK)",
                ExpressionAttributeNames={
                    "#status": f"{role}_merge_status",
                    "#at": f"{role}_merged_at",
                    "#count": f"{role}_merged_count",
                },
                ExpressionAttributeValues={
                    ":status": {"S": MERGE_COMPLETED},
                    ":at": {"S": datetime.now(UTC).isoformat()},
                    ":count": {"N": str(count)},
                },
            )
        except ClientError as exc:
            if aws_error_code(exc) != "ConditionalCheckFailedException":
                raise
            # Deleted while we merged: nobody is left to read the mark.
            log.info("%s vanished during the merge; not marked", self)
