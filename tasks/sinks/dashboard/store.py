"""Writes to the dashboard table, conditional on the stream's sequence numbers.

Each receipt has a *manifest* item listing the keys of the projection items
last written for it and the sequence number they were written at. A write
puts the receipt's items, deletes what the manifest lists but the projection
no longer has (a label removed, a merchant renamed: the receipt item moves),
and puts the manifest, in TransactWriteItems calls whose every action is
conditional on ``seq <= :seq``: a late duplicate never overwrites a newer
state, and a newer state written meanwhile cancels the transaction, which
means *superseded*, not failed.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, Final

from chromasync.core.resources import error_code
from tasks.sinks.backend import LeaseCheck, WriteJournal, WriteResult
from tasks.sinks.dashboard.items import Manifest, decode, encode, manifest_item, parse_manifest
from tasks.sinks.dashboard.projection import Key, Projection, manifest_key, receipt_ref
from tasks.sinks.dashboard.table import RECEIPT_ATTRIBUTE, RECEIPT_INDEX
from tasks.sources import BATCH_GET_KEYS, UNPROCESSED_BACKOFF, ReceiptKey

#: Actions per TransactWriteItems call (the API's maximum).
TRANSACTION_ACTIONS: Final = 100
#: Each put and delete holds only if the item is absent or not newer than this write.
NOT_NEWER: Final = "attribute_not_exists(PK) OR attribute_not_exists(#seq) OR #seq <= :seq"
#: Cancellation reasons that mean "another write got there first": try again later.
CONTENDED_REASONS: Final = frozenset(
    {
        "TransactionConflict",
        "ThrottlingError",
        "ProvisionedThroughputExceeded",
        "RequestLimitExceeded",
    }
)
#: Image ids per Scan filter (``image_id IN (...)`` takes at most 100 operands).
SCAN_IMAGES: Final = 100
#: Reasons as moto and older SDKs put them in the message: ``[ConditionalCheckFailed, None]``.
_REASONS_IN_MESSAGE: Final = re.compile(r"\[([A-Za-z, ]+)\]")


class TransactionContended(ConnectionError):
    """A transaction was cancelled by a concurrent one on the same items, or throttled.

    A ``ConnectionError``, so :func:`tasks.errors.is_transient` retries the batch
    (applying current state again is idempotent).
    """


def cancellation_codes(exc: BaseException) -> list[str]:
    """The per-action reasons of a cancelled transaction (``None`` for an action that held)."""
    response = getattr(exc, "response", None) or {}
    reasons = response.get("CancellationReasons")
    if reasons:
        return [str(r.get("Code", "None")) for r in reasons]
    found = _REASONS_IN_MESSAGE.search(str(response.get("Error", {}).get("Message", "")))
    return [part.strip() for part in found.group(1).split(",")] if found else []


def _chunks(actions: list[dict[str, Any]], size: int) -> Iterator[list[dict[str, Any]]]:
    for start in range(0, len(actions), size):
        yield actions[start : start + size]


class DashboardStore:
    """The dashboard table, through a boto3 DynamoDB client (thread-safe, shared)."""

    def __init__(self, client: Any, table: str) -> None:
        self.client = client
        self.table = table

    def manifests(self, receipts: Iterable[ReceiptKey]) -> dict[ReceiptKey, Manifest]:
        """The manifest of each receipt that has one (consistent BatchGetItem)."""
        by_key = {manifest_key(r): r for r in receipts}
        keys = [{"PK": {"S": pk}, "SK": {"S": sk}} for pk, sk in by_key]
        found: dict[ReceiptKey, Manifest] = {}
        for start in range(0, len(keys), BATCH_GET_KEYS):
            request: dict[str, Any] = {
                self.table: {"Keys": keys[start : start + BATCH_GET_KEYS], "ConsistentRead": True}
            }
            attempt = 0
            while request:
                if attempt:  # throttled: DynamoDB left keys unread
                    time.sleep(min(1.0, UNPROCESSED_BACKOFF * 2**attempt))
                page = self.client.batch_get_item(RequestItems=request)
                for raw in page.get("Responses", {}).get(self.table, []):
                    item = decode(raw)
                    found[by_key[(item["PK"], item["SK"])]] = parse_manifest(item)
                request = page.get("UnprocessedKeys") or {}
                attempt += 1
        return found

    def scan(
        self, image_ids: Sequence[str] | None = None, receipt_id: int | None = None
    ) -> list[dict[str, Any]]:
        """Every item (consistent Scan), or those of some images (and one receipt number)."""
        if image_ids is None:
            return list(self._scan(None, receipt_id))
        chosen = sorted(set(image_ids))
        found: list[dict[str, Any]] = []
        for start in range(0, len(chosen), SCAN_IMAGES):
            found.extend(self._scan(chosen[start : start + SCAN_IMAGES], receipt_id))
        return found

    def _scan(
        self, image_ids: list[str] | None, receipt_id: int | None
    ) -> Iterator[dict[str, Any]]:
        kwargs: dict[str, Any] = {"TableName": self.table, "ConsistentRead": True}
        parts: list[str] = []
        values: dict[str, Any] = {}
        if image_ids is not None:
            names = [f":i{n}" for n in range(len(image_ids))]
            parts.append(f"image_id IN ({', '.join(names)})")
            values.update({name: {"S": i} for name, i in zip(names, image_ids, strict=True)})
        if receipt_id is not None:
            parts.append("receipt_id = :r")
            values[":r"] = {"N": str(receipt_id)}
        if parts:
            kwargs["FilterExpression"] = " AND ".join(parts)
            kwargs["ExpressionAttributeValues"] = values
        while True:
            page = self.client.scan(**kwargs)
            yield from (decode(raw) for raw in page.get("Items", []))
            last = page.get("LastEvaluatedKey")
            if not last:
                return
            kwargs["ExclusiveStartKey"] = last

    def receipt_keys(self, receipt: ReceiptKey) -> set[Key]:
        """The keys of every item of ``receipt`` in the ``by_receipt`` index (one paged Query).

        A global index is eventually consistent (no ``ConsistentRead``): an item
        written a moment ago may not be listed yet, one deleted a moment ago may
        still be. Good enough for what it serves, a repair of items a verify saw
        earlier; deleting a key that is already gone is harmless.
        """
        kwargs: dict[str, Any] = {
            "TableName": self.table,
            "IndexName": RECEIPT_INDEX,
            "KeyConditionExpression": "#r = :r",
            "ExpressionAttributeNames": {"#r": RECEIPT_ATTRIBUTE},
            "ExpressionAttributeValues": {":r": {"S": receipt_ref(receipt)}},
        }
        found: set[Key] = set()
        while True:
            page = self.client.query(**kwargs)
            found.update((raw["PK"]["S"], raw["SK"]["S"]) for raw in page.get("Items", []))
            last = page.get("LastEvaluatedKey")
            if not last:
                return found
            kwargs["ExclusiveStartKey"] = last

    def write(
        self,
        projection: Projection,
        seq: str,
        stale: Iterable[Key],
        check_lease: LeaseCheck,
        journal: WriteJournal,
    ) -> tuple[WriteResult, bool]:
        """Put the projection's items, delete ``stale`` ones, then put the manifest.

        Returns what was written and whether a newer state cancelled the write
        (superseded). Every action is conditional on ``seq``; the manifest goes
        in the last call, so it never lists items not written yet.
        """
        condition = {
            "ConditionExpression": NOT_NEWER,
            "ExpressionAttributeNames": {"#seq": "seq"},
            "ExpressionAttributeValues": {":seq": {"S": seq}},
        }
        puts = [
            {"Put": {"TableName": self.table, "Item": encode({**item, "seq": seq}), **condition}}
            for _key, item in sorted(projection.items.items())
        ]
        deletes = [
            {
                "Delete": {
                    "TableName": self.table,
                    "Key": {"PK": {"S": pk}, "SK": {"S": sk}},
                    **condition,
                }
            }
            for pk, sk in sorted(set(stale) - set(projection.items))
        ]
        manifest = {
            "Put": {
                "TableName": self.table,
                "Item": encode(manifest_item(projection, seq)),
                **condition,
            }
        }
        result = WriteResult()
        for chunk in _chunks([*puts, *deletes, manifest], TRANSACTION_ACTIONS):
            check_lease()
            start = time.time()
            try:
                self.client.transact_write_items(TransactItems=chunk)
            except Exception as exc:
                if self._superseded(exc):
                    return result, True
                raise
            put = sum(1 for a in chunk if "Put" in a and a is not manifest)
            deleted = sum(1 for a in chunk if "Delete" in a)
            result.updated += put
            result.deleted += deleted
            result.write_calls += 1
            journal("transact", len(chunk), start, time.time())
        return result, False

    def _superseded(self, exc: BaseException) -> bool:
        """True when a newer state cancelled the transaction; raise when it was contended."""
        if error_code(exc) != "TransactionCanceledException":
            return False
        codes = [c for c in cancellation_codes(exc) if c not in ("None", "")]
        if codes and all(c == "ConditionalCheckFailed" for c in codes):
            return True
        if any(c in CONTENDED_REASONS for c in codes):
            raise TransactionContended(
                f"a write to dashboard table {self.table!r} was cancelled ({', '.join(codes)}); "
                "it is retried"
            ) from exc
        return False
