"""Reading the table's current state at apply time (consistent reads).

The worker applies *current state*, not the deltas in the message: whatever
order, duplicates or replays the stream delivers, what it writes is what the
table holds now. All items of one receipt come back in one consistent Query
(lines, words, labels, metadata share the ``RECEIPT#{rid:05d}`` prefix).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from producers.config import AwsSettings
from producers.decoding import decode_image
from producers.entities import EntityType, image_pk, receipt_sk, recognise

ReceiptKey = tuple[str, int]

#: Receipts read at the same time while a batch is planned (boto3 clients are thread-safe).
READ_CONCURRENCY = 8


@dataclass
class ReceiptState:
    """Everything the table holds for one receipt, by entity."""

    image_id: str
    receipt_id: int
    receipt: dict[str, Any] | None = None
    metadata: dict[str, Any] | None = None
    lines: dict[int, dict[str, Any]] = field(default_factory=dict)
    words: dict[tuple[int, int], dict[str, Any]] = field(default_factory=dict)
    labels: dict[tuple[int, int], dict[str, dict[str, Any]]] = field(default_factory=dict)
    runs: dict[str, dict[str, Any]] = field(default_factory=dict)


class TableReader:
    def __init__(self, aws: AwsSettings, table: str, client: Any | None = None) -> None:
        import boto3

        self.table = table
        self.client = client or boto3.client("dynamodb", **aws.client_kwargs())

    def receipt(self, image_id: str, receipt_id: int) -> ReceiptState:
        state = ReceiptState(image_id, receipt_id)
        prefix = receipt_sk(receipt_id)
        kwargs: dict[str, Any] = {
            "TableName": self.table,
            "KeyConditionExpression": "PK = :pk AND begins_with(SK, :sk)",
            "ExpressionAttributeValues": {":pk": {"S": image_pk(image_id)}, ":sk": {"S": prefix}},
            "ConsistentRead": True,
        }
        while True:
            page = self.client.query(**kwargs)
            for raw in page.get("Items", []):
                self._add(state, decode_image(raw, "item"))
            last = page.get("LastEvaluatedKey")
            if not last:
                return state
            kwargs["ExclusiveStartKey"] = last

    @staticmethod
    def _add(state: ReceiptState, item: dict[str, Any]) -> None:
        found = recognise(str(item.get("PK", "")), str(item.get("SK", "")))
        if found is None or found.keys.get("receipt_id") != state.receipt_id:
            return
        keys = found.keys
        match found.spec.entity_type:
            case EntityType.RECEIPT:
                state.receipt = item
            case EntityType.RECEIPT_METADATA:
                state.metadata = item
            case EntityType.RECEIPT_LINE:
                state.lines[int(keys["line_id"])] = item
            case EntityType.RECEIPT_WORD:
                state.words[(int(keys["line_id"]), int(keys["word_id"]))] = item
            case EntityType.RECEIPT_WORD_LABEL:
                word = (int(keys["line_id"]), int(keys["word_id"]))
                state.labels.setdefault(word, {})[str(keys["label"])] = item
            case EntityType.COMPACTION_RUN:
                state.runs[str(keys["run_id"])] = item

    def receipts(self, keys: list[ReceiptKey]) -> dict[ReceiptKey, ReceiptState]:
        """Every receipt's current state; several receipts are read concurrently."""
        unique = list(dict.fromkeys(keys))
        if len(unique) <= 1:
            return {key: self.receipt(*key) for key in unique}
        with ThreadPoolExecutor(max_workers=min(READ_CONCURRENCY, len(unique))) as pool:
            states = pool.map(lambda key: self.receipt(*key), unique)
            return dict(zip(unique, states, strict=True))
