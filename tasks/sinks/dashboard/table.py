"""The dashboard table as a resource: made by ``chromasync provision``, probed by workers.

A worker never creates it (its role may not): :func:`probe` names it as a
:class:`~chromasync.core.resources.MissingResource` when it is not there.
"""

from __future__ import annotations

from typing import Any, Final

from chromasync.core.resources import naming_missing_table

#: String keys (``MERCHANT#...``/``DAY#...``, ``LABEL#...``/``RECEIPT#...``), billed per request.
TABLE_SCHEMA: Final[dict[str, Any]] = {
    "KeySchema": [
        {"AttributeName": "PK", "KeyType": "HASH"},
        {"AttributeName": "SK", "KeyType": "RANGE"},
    ],
    "AttributeDefinitions": [
        {"AttributeName": "PK", "AttributeType": "S"},
        {"AttributeName": "SK", "AttributeType": "S"},
    ],
    "BillingMode": "PAY_PER_REQUEST",
}
#: The attribute DynamoDB's TTL reads (epoch seconds); only set with a TTL configured.
TTL_ATTRIBUTE: Final = "expires_at"


def probe(dynamodb: Any, name: str) -> None:
    """Describe the table; :class:`MissingResource` naming it when it does not exist."""
    with naming_missing_table(dynamodb, name):
        dynamodb.describe_table(TableName=name)
