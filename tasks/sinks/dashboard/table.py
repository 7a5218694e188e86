"""The dashboard table as a resource: made by ``chromasync provision``, probed by workers.

A worker never creates it (its role may not): :func:`probe` names it as a
:class:`~chromasync.core.resources.MissingResource` when it is not there.
"""

from __future__ import annotations

from typing import Any, Final

from chromasync.core.resources import error_code, naming_missing_table

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
#: How long ``provision`` waits for a new table to become ACTIVE: attempts × seconds.
WAIT_ATTEMPTS: Final = 60
WAIT_DELAY: Final = 1


def finish_table(dynamodb: Any, name: str) -> str:
    """Wait until the table just created is ACTIVE, turn TTL on; return its ARN.

    (The create call itself is in ``DashboardSink.provision``, the one place
    allowed to make it.) TTL is turned on whatever
    ``CHROMASYNC_DASHBOARD_TTL_DAYS`` says: items without ``expires_at`` never
    expire, so setting the variable later needs no second provisioning.
    """
    dynamodb.get_waiter("table_exists").wait(
        TableName=name, WaiterConfig={"Delay": WAIT_DELAY, "MaxAttempts": WAIT_ATTEMPTS}
    )
    try:
        dynamodb.update_time_to_live(
            TableName=name,
            TimeToLiveSpecification={"AttributeName": TTL_ATTRIBUTE, "Enabled": True},
        )
    except Exception as exc:
        # Already on (a second provisioning): DynamoDB refuses to set it again.
        if error_code(exc) != "ValidationException" or "already enabled" not in str(exc):
            raise
    return str(dynamodb.describe_table(TableName=name)["Table"]["TableArn"])


def probe(dynamodb: Any, name: str) -> None:
    """Describe the table; :class:`MissingResource` naming it when it does not exist."""
    with naming_missing_table(dynamodb, name):
        dynamodb.describe_table(TableName=name)
