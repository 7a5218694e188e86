"""The DynamoDB condition keys of a request: attributes, leading keys, ReturnValues, Select."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from chromasync.motoiam.expressions import expression_attribute_names, partition_key_values
from chromasync.motoiam.model import Context, ContextValue, TableKeys, Undeterminable


def _scalar(value: Any) -> str | None:
    """The string IAM compares for a key's AttributeValue (S, N or B as sent)."""
    if isinstance(value, Mapping) and len(value) == 1:
        ((kind, text),) = value.items()
        if kind in ("S", "N", "B") and isinstance(text, str):
            return text
    return None


class _ItemContext:
    """Collects the DynamoDB context keys of one table's part of a request."""

    def __init__(self, keys: TableKeys | None, index: str | None = None) -> None:
        self.keys = keys
        self.index = index
        self.attributes: set[str] = set()
        self.leading: list[str] = []
        self.undeterminable: dict[str, Undeterminable] = {}

    def _fail(self, key: str, reason: str) -> None:
        self.undeterminable.setdefault(key, Undeterminable(reason))

    def expression(self, expression: Any, names: Mapping[str, str] | None) -> None:
        if expression is None:
            return
        try:
            self.attributes |= expression_attribute_names(str(expression), names)
        except ValueError as exc:
            self._fail("dynamodb:attributes", str(exc))

    def named(self, mapping: Any) -> None:
        """Attribute names that are the keys of a map (Key, Item, Expected, ...)."""
        if isinstance(mapping, Mapping):
            self.attributes |= {str(name) for name in mapping}

    def listed(self, names: Any) -> None:
        """Attribute names listed (the legacy AttributesToGet)."""
        if isinstance(names, list):
            self.attributes |= {str(name) for name in names}

    def leading_from_item(self, item: Any) -> None:
        if self.keys is None:
            self._fail("dynamodb:leadingkeys", "the table does not exist")
            return
        value = _scalar(item.get(self.keys.partition_key)) if isinstance(item, Mapping) else None
        if value is None:
            self._fail("dynamodb:leadingkeys", "the request has no partition key value")
        else:
            self.leading.append(value)

    def leading_from_query(self, params: Mapping[str, Any]) -> None:
        if self.keys is None:
            self._fail("dynamodb:leadingkeys", "the table does not exist")
            return
        partition_key = self.keys.partition_key
        if self.index is not None:
            index_key = self.keys.index_partition_keys.get(self.index)
            if index_key != partition_key:
                self._fail(
                    "dynamodb:leadingkeys",
                    f"index {self.index!r} is not keyed on the table's partition key",
                )
                return
        found: list[Any] = []
        try:
            if params.get("KeyConditionExpression") is not None:
                found = partition_key_values(
                    str(params["KeyConditionExpression"]),
                    partition_key,
                    params.get("ExpressionAttributeNames"),
                    params.get("ExpressionAttributeValues"),
                )
        except ValueError as exc:
            self._fail("dynamodb:leadingkeys", str(exc))
            return
        legacy = (params.get("KeyConditions") or {}).get(partition_key)
        if isinstance(legacy, Mapping) and legacy.get("ComparisonOperator") == "EQ":
            found.extend(legacy.get("AttributeValueList") or [])
        scalars = [_scalar(value) for value in found]
        if not scalars or None in scalars:
            self._fail("dynamodb:leadingkeys", "no partition key value found in the query")
        else:
            self.leading.extend(s for s in scalars if s is not None)

    def context(self, params: Mapping[str, Any], base: Context) -> dict[str, ContextValue]:
        out: dict[str, ContextValue] = dict(base)
        if self.attributes:
            out["dynamodb:attributes"] = tuple(sorted(self.attributes))
        if self.leading:
            out["dynamodb:leadingkeys"] = tuple(dict.fromkeys(self.leading))
        for key in ("ReturnValues", "Select"):
            if isinstance(params.get(key), str):
                out[f"dynamodb:{key.lower()}"] = (params[key],)
        out.update(self.undeterminable)
        return out


def item_context(
    operation: str, params: Mapping[str, Any], keys: TableKeys | None, base: Context
) -> dict[str, ContextValue]:
    """Context of one item operation (or one element of a batch or transaction)."""
    names = params.get("ExpressionAttributeNames")
    index = params.get("IndexName") if operation in ("Query", "Scan") else None
    collected = _ItemContext(keys, index)
    for element in (
        "UpdateExpression",
        "ConditionExpression",
        "ProjectionExpression",
        "FilterExpression",
        "KeyConditionExpression",
    ):
        collected.expression(params.get(element), names)
    collected.listed(params.get("AttributesToGet"))
    for element in (
        "Key",
        "Item",
        "Expected",
        "AttributeUpdates",
        "KeyConditions",
        "QueryFilter",
        "ScanFilter",
    ):
        collected.named(params.get(element))
    if operation in ("GetItem", "UpdateItem", "DeleteItem", "ConditionCheckItem"):
        collected.leading_from_item(params.get("Key"))
    elif operation == "PutItem":
        collected.leading_from_item(params.get("Item"))
    elif operation == "Query":
        collected.leading_from_query(params)
    return collected.context(params, base)


def batch_context(request: Any, keys: TableKeys | None, base: Context) -> dict[str, ContextValue]:
    """Context of one table's part of a BatchGetItem or BatchWriteItem request.

    BatchGetItem gives each table ``{"Keys": [...], "ProjectionExpression": ...}``;
    BatchWriteItem a list of ``{"PutRequest": {"Item"}}`` / ``{"DeleteRequest": {"Key"}}``.
    """
    collected = _ItemContext(keys)
    if isinstance(request, Mapping):
        names = request.get("ExpressionAttributeNames")
        collected.expression(request.get("ProjectionExpression"), names)
        collected.listed(request.get("AttributesToGet"))
        for key in request.get("Keys") or []:
            collected.named(key)
            collected.leading_from_item(key)
    elif isinstance(request, list):
        for write in request:
            put, delete = write.get("PutRequest") or {}, write.get("DeleteRequest") or {}
            item = put.get("Item") or delete.get("Key")
            collected.named(item)
            collected.leading_from_item(item)
    return collected.context({}, base)
