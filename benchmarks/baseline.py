"""The per-message design chromasync replaces, as a Celery app: ``celery -A benchmarks.baseline``.

One SQS message per stream record, and per message: take the collection's lock
(the same lock backend as chromasync), read the item (one consistent GetItem),
update one embedding, release. Deliberately naive, but not handicapped: the
Chroma client, the lock backend and the DynamoDB client are built once per
process (before the first task, as chromasync's worker does), the queues are
one per collection with one worker each, exactly like chromasync's, and each
SQS receive takes up to ten messages with no pause between receives.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from celery import Celery
from celery.signals import worker_process_init

from chromasync.core.attributes import decode_image
from chromasync.core.celery_settings import celery_settings
from chromasync.core.entities import SPECS_BY_TYPE
from chromasync.core.keys import line_embedding_id, word_embedding_id
from tasks.audit import AuditLog
from tasks.chroma.factory import chroma_target_from_settings
from tasks.chroma.target import ChromaTarget
from tasks.config import WorkerSettings
from tasks.lease import HeldLease
from tasks.locks import lock_backend_from_url
from tasks.locks.backend import LockBackend
from tasks.projection import fields_patch, label_summary

#: Celery task name of the per-message task.
APPLY_ONE_TASK = "benchmarks.apply_one"

app = Celery("chromasync-baseline")
app.conf.update(celery_settings())
# Not handicapped: up to 10 messages per SQS receive (SQS's maximum) instead of one,
# and the benchmark starts these workers with a short polling interval, so a worker
# does not sleep between one-message receives.
app.conf.worker_prefetch_multiplier = 10


@dataclass
class BaselineRuntime:
    settings: WorkerSettings
    locks: LockBackend
    target: ChromaTarget
    dynamodb: Any
    audit: AuditLog

    @classmethod
    def from_env(cls) -> BaselineRuntime:
        import boto3

        settings = WorkerSettings.from_env()
        return cls(
            settings,
            lock_backend_from_url(settings.lock_url, settings.shared.aws),
            chroma_target_from_settings(settings),
            # The same table as chromasync's worker reads (CHROMASYNC_TABLE_ENDPOINT_URL).
            boto3.client("dynamodb", **settings.shared.aws.table_client_kwargs()),
            AuditLog(settings.audit_log),
        )


_runtime: BaselineRuntime | None = None


def runtime() -> BaselineRuntime:
    global _runtime
    if _runtime is None:
        _runtime = BaselineRuntime.from_env()
    return _runtime


@worker_process_init.connect
def _warm(**_: Any) -> None:
    """Open Chroma and the clients before the first message, as chromasync's worker does."""
    rt = runtime()
    for name in rt.settings.shared.collections:
        rt.target.collection(name)


def embedding_id(message: dict[str, Any]) -> str:
    keys = message["keys"]
    if message["collection_role"] == "lines":
        return line_embedding_id(keys["image_id"], keys["receipt_id"], keys["line_id"])
    return word_embedding_id(keys["image_id"], keys["receipt_id"], keys["line_id"], keys["word_id"])


def metadata_for(entity_type: str, item: dict[str, Any] | None) -> dict[str, Any]:
    """What one item alone says about one embedding (the old design's whole knowledge)."""
    if item is None:
        return {"text": None}
    if entity_type == "RECEIPT_WORD_LABEL":
        return label_summary([item])
    return fields_patch(SPECS_BY_TYPE[entity_type], item)


@app.task(name=APPLY_ONE_TASK)
def apply_one(message: dict[str, Any]) -> str:
    """Lock, read the item, update one embedding, release."""
    rt = runtime()
    s = rt.settings
    collection = message["collection"]
    with HeldLease(rt.locks, collection, s.lock_ttl, s.lock_safety_margin, s.lock_wait) as held:
        got = rt.dynamodb.get_item(
            TableName=s.shared.table,
            Key={"PK": {"S": message["pk"]}, "SK": {"S": message["sk"]}},
            ConsistentRead=True,
        ).get("Item")
        item = decode_image(got, "item") if got else None
        eid = embedding_id(message)
        chroma = rt.target.collection(collection)
        with rt.target.writing(collection):
            held.check()
            start = time.time()
            chroma.update(ids=[eid], metadatas=[metadata_for(message["entity_type"], item)])
            rt.audit.record(
                "write", collection=collection, kind="update", count=1, start=start, end=time.time()
            )
    return eid
