"""Reading the table's current state at apply time (consistent reads).

The worker applies *current state*, not the deltas in the message: whatever
order, duplicates or replays the stream delivers, what it writes is what the
table holds now. All items of one receipt come back in one consistent Query
(lines, words, labels, metadata share the ``RECEIPT#{rid:05d}`` prefix).

A batch that needs only part of a receipt (a line's or a word's own item, the
labels of one word or one line) says so with a :class:`ReadScope`, and
:meth:`TableReader.read` reads just that: the items by key (consistent
BatchGetItem, 100 keys a call, for every receipt of the batch at once) and the
labels by a Query on their sort-key prefix, filtered to label items, so updating
one embedding does not read its whole receipt.

Items are kept by entity, as the registry describes them
(:mod:`chromasync.core.entities`): nothing here knows one entity from another.
"""

from __future__ import annotations

import functools
import os
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from chromasync.core.attributes import decode_image
from chromasync.core.config import AwsSettings
from chromasync.core.entities import Effect, EntitySpec, recognise
from chromasync.core.keys import image_pk, receipt_sk

ReceiptKey = tuple[str, int]

#: Keys per BatchGetItem call (the API's maximum).
BATCH_GET_KEYS = 100
#: First pause, in seconds, before asking again for keys BatchGetItem left unprocessed.
UNPROCESSED_BACKOFF = 0.05


@dataclass(frozen=True)
class ReadScope:
    """The part of one receipt a batch needs: all of it, or some items and key prefixes."""

    whole: bool = False
    #: Sort keys of single items to read.
    items: frozenset[str] = frozenset()
    #: Sort-key prefixes whose *label* items to read (``begins_with``, items with a
    #: ``label`` attribute: the only ones a label summary counts).
    labels: frozenset[str] = frozenset()

    def __or__(self, other: ReadScope) -> ReadScope:
        if self.whole or other.whole:
            return WHOLE_RECEIPT
        return ReadScope(False, self.items | other.items, self.labels | other.labels)


#: Every item of the receipt (one Query).
WHOLE_RECEIPT = ReadScope(whole=True)

#: Receipts read at the same time while a batch is planned (boto3 clients are thread-safe).
#: The threads are kept for the process: the read client keeps one connection per
#: thread, so threads made afresh per batch meant a TCP connect per read.
READ_CONCURRENCY = 8

#: From this many label prefixes in one receipt on, its labels are read with one
#: Query over the whole receipt (server-side filtered to label items) instead of
#: one Query per prefix: a Query costs mostly per call, and DynamoDB charges the
#: items a receipt-wide Query reads, 1-3 read units for a receipt of ~100 items,
#: about what three separate Queries cost (BENCHMARKS.md, per-call costs).
LABEL_PREFIXES_PER_RECEIPT_QUERY = 3


#: Items of one entity in a receipt, each by its key within the receipt
#: (:meth:`EntitySpec.item_key`: ``(line_id, word_id)`` for a word, ``()`` for the metadata).
Items = dict[tuple[Any, ...], dict[str, Any]]


@dataclass
class ReceiptState:
    """Everything read of one receipt, by entity."""

    image_id: str
    receipt_id: int
    items: dict[str, Items] = field(default_factory=dict)

    #: :meth:`under`'s items grouped by key prefix, per entity and prefix length: built
    #: once per state (effects ask for one owner's labels per change), dropped by :meth:`add`.
    _groups: dict[tuple[str, int], dict[tuple[Any, ...], list[dict[str, Any]]]] = field(
        default_factory=dict, repr=False, compare=False
    )

    def add(self, spec: EntitySpec, item_key: tuple[Any, ...], item: dict[str, Any]) -> None:
        self.items.setdefault(spec.entity_type, {})[item_key] = item
        self._groups.clear()

    def of(self, spec: EntitySpec) -> Items:
        """The entity's items in this receipt (none read: empty)."""
        return self.items.get(spec.entity_type, {})

    def item(self, spec: EntitySpec, item_key: tuple[Any, ...] = ()) -> dict[str, Any] | None:
        """One item, or None when the table does not hold it (or it was not read)."""
        return self.of(spec).get(item_key)

    def under(self, spec: EntitySpec, prefix: tuple[Any, ...]) -> list[dict[str, Any]]:
        """The entity's items whose keys start with ``prefix`` (a word's or a line's labels)."""
        width = len(prefix)
        groups = self._groups.get((spec.entity_type, width))
        if groups is None:
            groups = {}
            for key, item in self.of(spec).items():
                groups.setdefault(key[:width], []).append(item)
            self._groups[(spec.entity_type, width)] = groups
        return list(groups.get(prefix, ()))


class TableReader:
    def __init__(self, aws: AwsSettings, table: str, client: Any | None = None) -> None:
        """Without ``client``, one whose answers skip botocore's shape walk
        (:func:`tasks.dynamo_reads.read_client`)."""
        from tasks.dynamo_reads import read_client

        self.table = table
        self.client = client or read_client(aws)
        self._pool: ThreadPoolExecutor | None = None
        self._pool_pid = 0

    def _run(self, reads: list[Callable[[], list[dict[str, Any]]]]) -> list[list[dict[str, Any]]]:
        """Each read's items, the reads run on the process's read threads."""
        if len(reads) <= 1:
            return [read() for read in reads]
        if self._pool is None or self._pool_pid != os.getpid():  # none yet, or forked
            self._pool = ThreadPoolExecutor(READ_CONCURRENCY, thread_name_prefix="table-read")
            self._pool_pid = os.getpid()
        return list(self._pool.map(lambda read: read(), reads))

    def close(self) -> None:
        """Let the read threads go (the reader makes new ones if used again)."""
        if self._pool is not None and self._pool_pid == os.getpid():
            self._pool.shutdown(wait=False)
        self._pool = None

    def _query(self, image_id: str, prefix: str, labels_only: bool = False) -> list[dict[str, Any]]:
        """Every item of the image's partition whose sort key starts with ``prefix``.

        ``labels_only`` keeps items with a ``label`` attribute (the server filters,
        so a line's words are not sent just to be skipped by the label summary).
        """
        kwargs: dict[str, Any] = {
            "TableName": self.table,
            "KeyConditionExpression": "PK = :pk AND begins_with(SK, :sk)",
            "ExpressionAttributeValues": {":pk": {"S": image_pk(image_id)}, ":sk": {"S": prefix}},
            "ConsistentRead": True,
        }
        if labels_only:
            kwargs["FilterExpression"] = "attribute_exists(#label)"
            kwargs["ExpressionAttributeNames"] = {"#label": "label"}
        items: list[dict[str, Any]] = []
        while True:
            page = self.client.query(**kwargs)
            items.extend(decode_image(raw, "item") for raw in page.get("Items", []))
            last = page.get("LastEvaluatedKey")
            if not last:
                return items
            kwargs["ExclusiveStartKey"] = last

    def _get_items(self, keys: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The items at these keys that exist (one consistent BatchGetItem, ≤ 100 keys)."""
        items: list[dict[str, Any]] = []
        request: dict[str, Any] = {self.table: {"Keys": keys, "ConsistentRead": True}}
        attempt = 0
        while request:
            if attempt:  # DynamoDB left some keys unread (throttled): back off, ask again
                time.sleep(min(1.0, UNPROCESSED_BACKOFF * 2**attempt))
            page = self.client.batch_get_item(RequestItems=request)
            raw_items = page.get("Responses", {}).get(self.table, [])
            items.extend(decode_image(raw, "item") for raw in raw_items)
            request = page.get("UnprocessedKeys") or {}
            attempt += 1
        return items

    def read(self, scopes: Mapping[ReceiptKey, ReadScope]) -> dict[ReceiptKey, ReceiptState]:
        """The current state of each receipt, as much of it as its scope asks for.

        Queries (whole receipts, key prefixes) and BatchGetItem calls run
        concurrently (:data:`READ_CONCURRENCY` threads kept for the process); items
        are added to the states here.
        """
        states = {key: ReceiptState(*key) for key in scopes}
        reads: list[Callable[[], list[dict[str, Any]]]] = []
        keys: dict[tuple[str, str], None] = {}
        for (image_id, receipt_id), scope in scopes.items():
            if scope.whole:
                reads.append(functools.partial(self._query, image_id, receipt_sk(receipt_id)))
                continue
            prefixes = sorted(scope.labels)
            if len(prefixes) >= LABEL_PREFIXES_PER_RECEIPT_QUERY:
                prefixes = [receipt_sk(receipt_id) + "#"]  # every label of the receipt
            for prefix in prefixes:
                reads.append(functools.partial(self._query, image_id, prefix, labels_only=True))
            keys.update(dict.fromkeys((image_pk(image_id), sk) for sk in sorted(scope.items)))
        every = [{"PK": {"S": pk}, "SK": {"S": sk}} for pk, sk in keys]
        for start in range(0, len(every), BATCH_GET_KEYS):
            reads.append(functools.partial(self._get_items, every[start : start + BATCH_GET_KEYS]))
        for items in self._run(reads):
            for item in items:
                found = recognise(str(item.get("PK", "")), str(item.get("SK", "")))
                if found is None:
                    continue
                state = states.get((str(found.keys["image_id"]), int(found.keys["receipt_id"])))
                if state is not None:
                    state.add(found.spec, found.spec.item_key(found.keys), item)
        return states

    def receipts(self, image_id: str | None = None) -> list[ReceiptKey]:
        """Receipts the table holds (RECEIPT items), optionally of one image: what
        ``verify`` checks, whatever the sink (a scan, so an operator's call)."""
        kwargs: dict[str, Any] = {"TableName": self.table, "ConsistentRead": True}
        found: list[ReceiptKey] = []
        while True:
            page = self.client.scan(**kwargs)
            for item in page.get("Items", []):
                got = recognise(item["PK"]["S"], item["SK"]["S"])
                if got is None or got.spec.effect is not Effect.RECEIPT:
                    continue
                key = (str(got.keys["image_id"]), int(got.keys["receipt_id"]))
                if image_id is None or key[0] == image_id:
                    found.append(key)
            last = page.get("LastEvaluatedKey")
            if not last:
                return sorted(found)
            kwargs["ExclusiveStartKey"] = last
