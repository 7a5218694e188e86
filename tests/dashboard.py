"""A seeded source table and a provisioned dashboard table on moto, for the dashboard sink tests."""

from __future__ import annotations

import itertools
import json
import uuid
from dataclasses import dataclass, field
from typing import Any

import boto3

from chromasync.core.contract import Change
from chromasync.core.keys import image_pk, receipt_sk, word_sk
from chromasync.provision import ensure_sink_tables, ensure_table
from chromasync.seed import ReceiptSpec, demo_receipts, seed_table
from tasks.config import WorkerSettings
from tasks.sinks.backend import SinkWrite
from tasks.sinks.dashboard import DashboardSink
from tests.servers import redis_url

#: Where realistic stream sequence numbers start (DynamoDB's are 21+ digits).
FIRST_SEQUENCE = 49_000_000_000_000_000_000


def dashboard_env(aws_env: dict[str, str], **extra: str) -> dict[str, str]:
    """The worker's environment with the dashboard turned on and names of its own."""
    suffix = uuid.uuid4().hex[:8]
    return {
        **aws_env,
        "CHROMASYNC_TABLE": f"receipts-{suffix}",
        "CHROMASYNC_QUEUE_PREFIX": f"d{suffix}-",
        "CHROMASYNC_SINKS": "chroma,dashboard",
        "CHROMASYNC_LOCK_URL": redis_url(),
        "CHROMASYNC_METRICS_URL": redis_url(),
        "CHROMASYNC_EVENTS_URL": redis_url(),
        **extra,
    }


@dataclass
class DashboardSystem:
    """The source table seeded with ``receipts``, the dashboard table, the sink."""

    env: dict[str, str]
    receipts: list[ReceiptSpec]
    settings: WorkerSettings = field(init=False)
    sink: DashboardSink = field(init=False)
    sequence: itertools.count[int] = field(
        default_factory=lambda: itertools.count(FIRST_SEQUENCE), init=False
    )

    def __post_init__(self) -> None:
        self.settings = WorkerSettings.from_env(self.env)
        shared = self.settings.shared
        self.dynamodb = boto3.client("dynamodb", **shared.aws.client_kwargs())
        ensure_table(shared, self.dynamodb)
        self.table = boto3.resource("dynamodb", **shared.aws.client_kwargs()).Table(shared.table)
        seed_table(self.table, self.receipts)
        ensure_sink_tables(self.settings, self.dynamodb)
        self.sink = DashboardSink(self.settings)

    @classmethod
    def seeded(cls, aws_env: dict[str, str], count: int = 2, **extra: str) -> DashboardSystem:
        return cls(dashboard_env(aws_env, **extra), demo_receipts(count, lines=3, words_per_line=2))

    @property
    def dashboard_table(self) -> str:
        return self.sink.settings.table

    def change(
        self, entity: str, event: str, spec: ReceiptSpec, seq: int | None = None, **keys: Any
    ) -> Change:
        """A change as the producer makes it (the next sequence number unless given)."""
        number = str(next(self.sequence) if seq is None else seq)
        return Change(
            entity_type=entity,
            event_name=event,
            keys={"image_id": spec.image_id, "receipt_id": spec.receipt_id, **keys},
            sequence_number=number,
            event_id=f"ev-{number}",
        )

    def apply(self, *changes: Change) -> SinkWrite:
        return self.sink.apply("dashboard", list(changes), lambda: None)

    def raw_items(self) -> list[dict[str, Any]]:
        """Every dashboard item as DynamoDB holds it (typed), in key order."""
        items: list[dict[str, Any]] = []
        kwargs: dict[str, Any] = {"TableName": self.dashboard_table, "ConsistentRead": True}
        while True:
            page = self.dynamodb.scan(**kwargs)
            items.extend(page.get("Items", []))
            if not page.get("LastEvaluatedKey"):
                break
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
        return sorted(items, key=lambda i: (i["PK"]["S"], i["SK"]["S"]))

    def dump(self) -> str:
        """The whole dashboard table as one canonical text: equal text, equal bytes."""
        return json.dumps(self.raw_items(), sort_keys=True)

    def items(self) -> dict[tuple[str, str], dict[str, Any]]:
        """Every dashboard item, decoded, by key."""
        return {(i["PK"], i["SK"]): i for i in self.sink.store.scan()}

    def of_kind(self, kind: str, spec: ReceiptSpec | None = None) -> dict[tuple[str, str], Any]:
        return {
            key: item
            for key, item in self.items().items()
            if item.get("kind") == kind
            and (spec is None or (item["image_id"], item["receipt_id"]) == key_of(spec))
        }

    def receipt_item(self, spec: ReceiptSpec) -> dict[str, Any]:
        (item,) = self.of_kind("receipt", spec).values()
        return item

    def clear(self) -> None:
        """Delete every dashboard item (a fresh table for the next run of a history)."""
        for item in self.raw_items():
            self.dynamodb.delete_item(
                TableName=self.dashboard_table, Key={"PK": item["PK"], "SK": item["SK"]}
            )

    # -- the source table --------------------------------------------------------------

    def key(self, spec: ReceiptSpec, suffix: str = "") -> dict[str, str]:
        return {"PK": image_pk(spec.image_id), "SK": receipt_sk(spec.receipt_id) + suffix}

    def put(self, spec: ReceiptSpec, suffix: str, **attributes: Any) -> None:
        self.table.put_item(Item={**self.key(spec, suffix), **attributes})

    def update(self, spec: ReceiptSpec, suffix: str, **attributes: Any) -> None:
        item = self.table.get_item(Key=self.key(spec, suffix), ConsistentRead=True)["Item"]
        self.table.put_item(Item={**item, **attributes})

    def remove(self, spec: ReceiptSpec, suffix: str) -> None:
        self.table.delete_item(Key=self.key(spec, suffix))

    def remove_attribute(self, spec: ReceiptSpec, suffix: str, name: str) -> None:
        item = self.table.get_item(Key=self.key(spec, suffix), ConsistentRead=True)["Item"]
        del item[name]
        self.table.put_item(Item=item)


def key_of(spec: ReceiptSpec) -> tuple[str, int]:
    return (spec.image_id, spec.receipt_id)


def word_suffix(line_id: int, word_id: int) -> str:
    """A word's sort key after its receipt's (``#LINE#00001#WORD#00002``)."""
    return word_sk(0, line_id, word_id).removeprefix(receipt_sk(0))


def label_suffix(line_id: int, word_id: int, label: str) -> str:
    return f"{word_suffix(line_id, word_id)}#LABEL#{label}"
