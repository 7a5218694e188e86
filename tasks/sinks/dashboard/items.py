"""Dashboard items as DynamoDB holds them: typed values, stored sequence numbers, manifests.

A receipt's *manifest* (``PK=RECEIPT#{image_id}#{receipt_id:05d}``,
``SK=MANIFEST``) lists the keys of the projection items last written for it
and the sequence number they were written at; a write deletes what it lists
and the projection no longer has.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from tasks.sinks.dashboard.projection import Key, Projection, manifest_key

#: Width of a stored sequence number: DynamoDB compares strings, and zero-padded
#: to the stream's longest (40 digits, as the contract allows) string order is numeric.
SEQ_WIDTH: Final = 40


def stored_seq(number: int) -> str:
    """A sequence number as stored: zero-padded so string order is numeric order."""
    return f"{number:0{SEQ_WIDTH}d}"


@dataclass(frozen=True)
class Manifest:
    """What was last written for one receipt, and at which sequence number."""

    keys: frozenset[Key]
    seq: str
    #: The receipt was gone from the table (a tombstone keeping ``seq``).
    removed: bool = False


def _serializer() -> Any:
    from boto3.dynamodb.types import TypeSerializer

    return TypeSerializer()


def encode(item: dict[str, Any]) -> dict[str, Any]:
    """An item in DynamoDB's typed form (numbers as Decimal or int, never float)."""
    serialize = _serializer().serialize
    return {name: serialize(value) for name, value in item.items()}


def decode(raw: dict[str, Any]) -> dict[str, Any]:
    from boto3.dynamodb.types import TypeDeserializer

    deserialize = TypeDeserializer().deserialize
    return {name: deserialize(value) for name, value in raw.items()}


def manifest_item(projection: Projection, seq: str) -> dict[str, Any]:
    pk, sk = manifest_key(projection.receipt)
    image_id, receipt_id = projection.receipt
    item: dict[str, Any] = {
        "PK": pk,
        "SK": sk,
        "kind": "manifest",
        "image_id": image_id,
        "receipt_id": receipt_id,
        "keys": [list(key) for key in sorted(projection.items)],
        "seq": seq,
    }
    if projection.removed:
        item["removed"] = True
    if projection.expires_at is not None:
        item["expires_at"] = projection.expires_at
    return item


def parse_manifest(item: dict[str, Any]) -> Manifest:
    keys = frozenset((str(k[0]), str(k[1])) for k in item.get("keys") or [])
    return Manifest(keys, str(item.get("seq", "")), bool(item.get("removed", False)))
