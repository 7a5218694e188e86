"""The dashboard table as a resource: made by ``chromasync provision``, probed by workers.

A worker never creates it (its role may not): :func:`probe` names it as a
:class:`~chromasync.core.resources.MissingResource` when it is not there, or
when it lacks the index a repair reads (a table made before the index was).
"""

from __future__ import annotations

from typing import Any, Final

from chromasync.core.keys import PK_SK_KEYS
from chromasync.core.resources import MissingResource, endpoint_of, naming_missing_table

#: The attribute every projection item carries to say whose it is:
#: ``{image_id}#{receipt_id:05d}`` (:func:`.projection.receipt_ref`). Manifests do
#: not carry it: their key already names the receipt.
RECEIPT_ATTRIBUTE: Final = "receipt"
#: The global secondary index of projection items by receipt (``receipt``, then
#: ``SK``), keys only. A repair Queries it for the receipt's items no manifest
#: lists, so the worker needs no Scan of the table (deploy/iam/worker.json grants
#: Query on this index alone).
RECEIPT_INDEX: Final = "by_receipt"
#: String keys (``MERCHANT#...``/``DAY#...``, ``LABEL#...``/``RECEIPT#...``), billed per
#: request, and :data:`RECEIPT_INDEX` (on demand too, as it follows the table's mode).
TABLE_SCHEMA: Final[dict[str, Any]] = {
    "KeySchema": PK_SK_KEYS["KeySchema"],
    "AttributeDefinitions": [
        *PK_SK_KEYS["AttributeDefinitions"],
        {"AttributeName": RECEIPT_ATTRIBUTE, "AttributeType": "S"},
    ],
    "GlobalSecondaryIndexes": [
        {
            "IndexName": RECEIPT_INDEX,
            "KeySchema": [
                {"AttributeName": RECEIPT_ATTRIBUTE, "KeyType": "HASH"},
                {"AttributeName": "SK", "KeyType": "RANGE"},
            ],
            "Projection": {"ProjectionType": "KEYS_ONLY"},
        }
    ],
    "BillingMode": "PAY_PER_REQUEST",
}
#: The attribute DynamoDB's TTL reads (epoch seconds); only set with a TTL configured.
TTL_ATTRIBUTE: Final = "expires_at"
#: What to do about a table made before :data:`RECEIPT_INDEX` existed.
INDEX_HINT: Final = (
    "add it to the existing table (aws dynamodb update-table, with the index of "
    "tasks/sinks/dashboard/table.py TABLE_SCHEMA) or deploy deploy/cloudformation.yaml"
)


def probe(dynamodb: Any, name: str) -> None:
    """Describe the table; :class:`MissingResource` naming it, or its index, when absent."""
    with naming_missing_table(dynamodb, name):
        table = dynamodb.describe_table(TableName=name)["Table"]
    indexes = {i.get("IndexName") for i in table.get("GlobalSecondaryIndexes") or []}
    if RECEIPT_INDEX not in indexes:
        where = endpoint_of(dynamodb)
        raise MissingResource("DynamoDB index", f"{name}/{RECEIPT_INDEX}", where, INDEX_HINT)
