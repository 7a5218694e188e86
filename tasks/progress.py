"""The last applied batch of each collection, for ``chromasync status`` and the exporter.

After each batch that applied at least one change the worker records the
batch id, when, under which fence, how many changes, the highest stream
sequence number among them and the end-to-end lag of the newest change.

Where: in the *lock store* (``CHROMASYNC_LOCK_URL``), next to the lock it
describes — a Redis hash ``chromasync:progress:collection:{collection}``, or
the item ``progress:collection:{collection}`` of the DynamoDB lock table
(the lock items themselves are never touched). The lock store is what
every worker already needs and the operator already keeps durable, while
the metrics Redis is optional and best effort; one place per collection
means ``status`` needs no other service to say what was applied last.

A record only replaces one with a lower fencing number (a Lua script in
Redis, a conditional write in DynamoDB): a worker that finishes late never
hides the batch of the lease that came after it. Recording is best effort:
a failure is logged (once, then every :data:`RETRY_AFTER` seconds at most)
and never fails the task.
"""

from __future__ import annotations

import abc
import json
import logging
import os
import socket
import threading
import time
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from chromasync.core.config import AwsSettings
from chromasync.core.contract import ChangeBatch

if TYPE_CHECKING:
    from tasks.config import WorkerSettings
    from tasks.runtime import BatchOutcome

log = logging.getLogger(__name__)

#: Prefix of the progress record's name (Redis key after ``chromasync:``, DynamoDB key).
PROGRESS_PREFIX = "progress:"
#: Seconds without another attempt after a failed write.
RETRY_AFTER = 30.0

# KEYS[1] progress hash; ARGV[1] fence, ARGV[2] the record as JSON.
# Replace only when the stored fence is lower (or absent); returns 1 when written.
_RECORD = """
local stored = redis.call('HGET', KEYS[1], 'fence')
if stored and tonumber(stored) >= tonumber(ARGV[1]) then
  return 0
end
redis.call('HSET', KEYS[1], 'fence', ARGV[1], 'record', ARGV[2])
return 1
"""


@dataclass(frozen=True)
class AppliedBatch:
    collection: str
    batch_id: str
    #: Epoch seconds when the batch's writes had returned.
    applied_at: float
    fence: int
    #: Changes of the batch that were applied.
    changes: int
    #: Highest stream sequence number among them (digits), None if none had one.
    highest_sequence: str | None
    #: ``applied_at`` minus the creation time of the newest change; None if unknown.
    lag: float | None
    #: ``hostname:pid`` of the worker process.
    worker: str

    @classmethod
    def from_outcome(cls, batch: ChangeBatch, outcome: BatchOutcome) -> AppliedBatch:
        applied = [
            c
            for i, c in enumerate(batch.changes)
            if i not in outcome.waiting and i not in outcome.failed
        ]
        now = time.time()
        newest = max(applied, key=lambda c: c.sequence_int) if applied else None
        created = newest.approximate_creation_time if newest else None
        return cls(
            collection=batch.collection,
            batch_id=batch.batch_id,
            applied_at=now,
            fence=outcome.fence or 0,
            changes=len(applied),
            highest_sequence=newest.sequence_number if newest else None,
            lag=max(0.0, now - created) if created is not None else None,
            worker=f"{socket.gethostname()}:{os.getpid()}",
        )

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str | bytes) -> AppliedBatch:
        data = json.loads(text)
        return cls(**{k: data.get(k) for k in cls.__dataclass_fields__})


def progress_name(collection: str) -> str:
    return f"{PROGRESS_PREFIX}collection:{collection}"


class ProgressStore(abc.ABC):
    """Where the last applied batch of each collection is kept."""

    #: Names the store in messages ("Redis lock store at redis://...").
    where: str

    @abc.abstractmethod
    def record(self, applied: AppliedBatch) -> bool:
        """Keep ``applied`` unless a record with a higher or equal fence is there."""

    @abc.abstractmethod
    def last(self, collection: str) -> AppliedBatch | None:
        """The last applied batch of a collection; None when nothing was applied yet."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release client resources."""


class RedisProgressStore(ProgressStore):
    def __init__(self, url: str, timeout: float = 2.0) -> None:
        import redis
        from redis.backoff import NoBackoff
        from redis.retry import Retry

        from tasks.locks.backends.redis import redact_url

        self.where = f"Redis lock store at {redact_url(url)}"
        self._client = redis.Redis.from_url(
            url,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            retry=Retry(NoBackoff(), 1),
        )
        self._record = self._client.register_script(_RECORD)

    @staticmethod
    def key(collection: str) -> str:
        return f"chromasync:{progress_name(collection)}"

    def record(self, applied: AppliedBatch) -> bool:
        done = self._record(
            keys=[self.key(applied.collection)], args=[applied.fence, applied.to_json()]
        )
        return bool(done)

    def last(self, collection: str) -> AppliedBatch | None:
        raw = self._client.hget(self.key(collection), "record")
        return AppliedBatch.from_json(raw) if raw else None

    def close(self) -> None:
        self._client.close()


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


def progress_store_from_url(
    lock_url: str, aws: AwsSettings | None = None, timeout: float = 2.0, config: Any = None
) -> ProgressStore:
    """The progress store living in the lock store named by ``CHROMASYNC_LOCK_URL``.

    The URL is assumed valid (``tasks.locks.lock_backend_from_url`` checks it).
    """
    parts = urlsplit(lock_url.strip())
    if parts.scheme.lower() == "dynamodb":
        return DynamoDBProgressStore(parts.netloc, aws or AwsSettings.from_env(), config)
    return RedisProgressStore(lock_url.strip(), timeout)


# -- the worker's hook (tasks.compaction) --------------------------------------------------

_stores: dict[str, ProgressStore] = {}
_lock = threading.Lock()
_paused_until = 0.0
_warned = False


def _store_for(settings: WorkerSettings) -> ProgressStore:
    with _lock:
        store = _stores.get(settings.lock_url)
        if store is None:
            store = progress_store_from_url(settings.lock_url, settings.shared.aws)
            _stores[settings.lock_url] = store
        return store


def batch_applied(settings: WorkerSettings, batch: ChangeBatch, outcome: BatchOutcome) -> None:
    """Record a batch that applied changes; best effort, never raises."""
    global _paused_until, _warned
    if outcome.applied <= 0 or time.monotonic() < _paused_until:
        return
    store: ProgressStore | None = None
    try:
        store = _store_for(settings)
        store.record(AppliedBatch.from_outcome(batch, outcome))
    except Exception as exc:  # noqa: BLE001 - progress never fails a task
        _paused_until = time.monotonic() + RETRY_AFTER
        if not _warned:
            _warned = True
            where = store.where if store is not None else settings.lock_url
            log.warning("last applied batch not recorded in %s: %s; work goes on", where, exc)
        return
    _warned = False


def reset_stores() -> None:
    """Close and forget the process's stores (tests that change the environment)."""
    global _paused_until, _warned
    with _lock:
        for store in _stores.values():
            store.close()
        _stores.clear()
    _paused_until, _warned = 0.0, False
