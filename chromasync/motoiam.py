"""IAM authorisation for moto's server the way AWS evaluates it, so policies can be proven.

moto can enforce IAM (``INITIAL_NO_AUTH_ACTION_COUNT`` or POST
``/moto-api/reset-auth``), but too coarsely to prove a least-privilege policy:
DynamoDB and DynamoDB Streams requests are authorised against ``"*"`` (a
statement scoped to a table never matches), SQS ``GetQueueUrl`` and
``CreateQueue`` against ``"*"`` too, four of the S3 calls we make are checked
under their API names instead of their IAM actions (``s3:ListObjectsV2``
instead of ``s3:ListBucket``), and conditions other than ``StringEquals`` on
``sts:ExternalId`` are taken as true. A policy that passed there could fail in
AWS, or pass here only because a condition was ignored.

This module replaces moto's decision for identity policies while keeping its
authentication (access key, signature) and its trust-policy check for
``AssumeRole``:

* each request becomes one or more :class:`Check` (IAM action, resource ARN,
  condition context) as the Service Authorization Reference describes it, for
  the DynamoDB, DynamoDB Streams, SQS and S3 operations this project uses;
* statements are matched on ``Action``/``NotAction``, ``Resource``/``NotResource``
  (wildcards per ARN segment) and ``Condition`` (:func:`condition_holds`), and an
  explicit Deny wins over any Allow (:func:`decide`).

It fails closed: an operation of those services it does not model, a condition
operator or key it does not model, a policy variable or a context value it cannot
determine never grants, and makes a Deny statement apply. Each such case writes one
line to the server's log saying which, so a policy author sees why a request was
denied.

Nothing here runs while enforcement is off: :func:`install_on_demand` only
watches ``/moto-api/reset-auth`` (and the count moto read from the environment)
and patches moto's authorisation when enforcement can start.
"""

from __future__ import annotations

import functools
import json
import logging
import math
import re
import sys
import threading
import xml.etree.ElementTree as ElementTree
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Any
from urllib.parse import urlparse

log = logging.getLogger(__name__)

# --------------------------------------------------------------------------
# What is modelled
# --------------------------------------------------------------------------

#: Condition operators evaluated (each also with ``IfExists`` and a set prefix).
BASE_OPERATORS = frozenset(
    {"StringEquals", "StringNotEquals", "StringLike", "StringNotLike", "Bool"}
)
#: Operators that match when the value matches none of the policy's values (AWS: NOR).
NEGATED_OPERATORS = frozenset({"StringNotEquals", "StringNotLike"})
#: Set prefixes, written ``ForAllValues:StringLike``.
SET_PREFIXES = frozenset({"ForAllValues", "ForAnyValue"})
#: Suffix that makes a condition true when the request lacks the key.
IF_EXISTS = "IfExists"

#: Context keys supplied from the request, lower-cased (AWS compares key names
#: without case). Any other key in a condition is not modelled: the statement
#: fails closed.
CONTEXT_KEYS = frozenset(
    {
        "aws:securetransport",
        "dynamodb:attributes",
        "dynamodb:leadingkeys",
        "dynamodb:returnvalues",
        "dynamodb:select",
    }
)
#: Keys that may hold several values (``ArrayOfString`` in the Service
#: Authorization Reference). AWS requires a set operator for them and does not
#: document a plain operator's meaning, so a plain operator on them fails closed.
MULTIVALUED_KEYS = frozenset({"dynamodb:attributes", "dynamodb:leadingkeys"})

#: DynamoDB operations authorised against the table named in ``TableName`` (a
#: Query or Scan with ``IndexName`` against ``table/NAME/index/INDEX``).
DYNAMODB_TABLE_OPERATIONS = frozenset(
    {
        "GetItem",
        "PutItem",
        "UpdateItem",
        "DeleteItem",
        "Query",
        "Scan",
        "DescribeTable",
        "CreateTable",
        "DeleteTable",
        "UpdateTable",
        "UpdateTimeToLive",
        "DescribeTimeToLive",
    }
)
#: DynamoDB and Streams operations without resource-level permissions ("*").
DYNAMODB_ACCOUNT_OPERATIONS = frozenset({"ListTables", "ListStreams"})
#: The IAM action each element of a TransactWriteItems request is authorised as
#: (AWS: "Using IAM with DynamoDB transactions"; TransactGetItems' Get is GetItem).
TRANSACT_ACTIONS = {
    "Get": "GetItem",
    "Put": "PutItem",
    "Update": "UpdateItem",
    "Delete": "DeleteItem",
    "ConditionCheck": "ConditionCheckItem",
}
#: Words of the expression grammar that are not attribute names.
EXPRESSION_KEYWORDS = frozenset(
    {"SET", "REMOVE", "ADD", "DELETE", "AND", "OR", "NOT", "BETWEEN", "IN"}
)

#: SQS operations authorised against ``arn:aws:sqs:R:A:QUEUENAME`` from ``QueueName``,
#: whether or not the queue exists (moto used "*").
SQS_QUEUE_NAME_OPERATIONS = frozenset({"GetQueueUrl", "CreateQueue"})
#: SQS operations without resource-level permissions.
SQS_ACCOUNT_OPERATIONS = frozenset({"ListQueues"})
#: SQS batch operations have no IAM action of their own.
SQS_ACTIONS = {
    "SendMessageBatch": "SendMessage",
    "DeleteMessageBatch": "DeleteMessage",
    "ChangeMessageVisibilityBatch": "ChangeMessageVisibility",
}

#: The IAM action of each S3 API operation modelled (moto checks the API name,
#: e.g. ``s3:HeadObject``, which no AWS policy grants). DeleteObjects is
#: authorised as ``s3:DeleteObject`` once per key (:func:`_s3_checks`).
S3_ACTIONS = {
    "ListObjectsV2": "ListBucket",
    "ListObjects": "ListBucket",
    "HeadBucket": "ListBucket",
    "HeadObject": "GetObject",
    "GetObject": "GetObject",
    "PutObject": "PutObject",
    "CreateMultipartUpload": "PutObject",
    "UploadPart": "PutObject",
    "CompleteMultipartUpload": "PutObject",
    "AbortMultipartUpload": "AbortMultipartUpload",
    "ListParts": "ListMultipartUploadParts",
    "DeleteObject": "DeleteObject",
    "CreateBucket": "CreateBucket",
    "DeleteBucket": "DeleteBucket",
    "GetBucketLocation": "GetBucketLocation",
    "ListBuckets": "ListAllMyBuckets",
}
#: S3 operations without resource-level permissions.
S3_ACCOUNT_OPERATIONS = frozenset({"ListBuckets"})

#: moto service names whose operations are modelled; an operation of theirs
#: outside the tables above is denied (fail closed) rather than guessed.
MODELLED_SERVICES = frozenset({"dynamodb", "dynamodbstreams", "sqs", "s3"})

#: Code of a denied request in each service's JSON protocol, as AWS answers (boto3
#: shows SQS's query-compatible code, sent in the ``x-amzn-query-error`` header).
#: moto sends its XML error to these too, which boto3 can only report as "403".
JSON_ACCESS_DENIED = {
    "dynamodb": "AccessDeniedException",
    "dynamodbstreams": "AccessDeniedException",
    "sqs": "AccessDenied",
}

# --------------------------------------------------------------------------
# Checks and their evaluation (pure)
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class Undeterminable:
    """A context value the request names but this layer cannot work out (fails closed)."""

    reason: str


#: A context key's values in a request; an absent key is simply not in the context.
ContextValue = tuple[str, ...] | Undeterminable
Context = Mapping[str, ContextValue]


@dataclass(frozen=True)
class Unsupported:
    """Why a statement could not be evaluated; it then grants nothing and a Deny applies."""

    reason: str


#: The result of a condition or a statement match: true, false, or not evaluable.
Verdict = bool | Unsupported


@dataclass(frozen=True)
class Check:
    """One authorisation AWS makes for a request: an IAM action on a resource, in a context."""

    action: str
    resource: str
    context: Context = field(default_factory=dict)


class NotModelled(Exception):
    """A request this layer cannot turn into checks; it is denied."""


class Outcome(Enum):
    """What IAM decides for a check; the value words the denial as AWS's message does."""

    ALLOWED = "allowed"
    IMPLICIT_DENY = "no identity-based policy allows"
    EXPLICIT_DENY = "an explicit deny in an identity-based policy"


@dataclass(frozen=True)
class Decision:
    """The outcome for one check, and the statements that could not be evaluated."""

    outcome: Outcome
    notes: tuple[str, ...] = ()


@functools.lru_cache(maxsize=1024)
def _glob(pattern: str, ignore_case: bool) -> re.Pattern[str]:
    """IAM's wildcards: ``*`` any run of characters, ``?`` one character."""
    body = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.compile(body, re.DOTALL | (re.IGNORECASE if ignore_case else 0))


def wildcard_match(pattern: str, value: str, ignore_case: bool = False) -> bool:
    return _glob(pattern, ignore_case).fullmatch(value) is not None


def resource_matches(pattern: str, arn: str) -> bool:
    """Whether a statement's resource pattern covers ``arn``, segment by segment.

    A wildcard in the partition, service, region or account segment stays in its
    segment (``arn:aws:dynamodb:*:table/x`` does not cover an ARN with an account),
    and an account-wide request (resource ``"*"``) is only covered by ``"*"``.
    """
    if pattern == "*":
        return True
    wanted, actual = pattern.split(":", 5), arn.split(":", 5)
    if len(wanted) != 6 or len(actual) != 6:
        return False
    return all(wildcard_match(w, a) for w, a in zip(wanted, actual, strict=True))


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _policy_values(values: Any) -> tuple[str, ...] | Unsupported:
    """A condition's values as strings (JSON true/false and numbers as IAM reads them)."""
    out = []
    for value in _as_list(values):
        if isinstance(value, bool):
            out.append("true" if value else "false")
        elif isinstance(value, int | float | str):
            text = str(value)
            if "${" in text:
                return Unsupported(f"policy variable in {text!r} is not modelled")
            out.append(text)
        else:
            return Unsupported(f"condition value {value!r} is not a string")
    return tuple(out)


def _value_matches(base: str, value: str, policy_values: tuple[str, ...]) -> bool:
    if base in ("StringEquals", "StringNotEquals"):
        hit = value in policy_values
    elif base in ("StringLike", "StringNotLike"):
        hit = any(wildcard_match(p, value) for p in policy_values)
    else:  # Bool
        hit = any(value.lower() == p.lower() for p in policy_values)
    return not hit if base in NEGATED_OPERATORS else hit


def _parse_operator(operator: str) -> tuple[str | None, str, bool] | Unsupported:
    """``ForAllValues:StringLikeIfExists`` -> (set prefix, base operator, IfExists)."""
    prefix, colon, rest = operator.partition(":")
    set_prefix = prefix if colon else None
    base = rest if colon else operator
    if set_prefix is not None and set_prefix not in SET_PREFIXES:
        return Unsupported(f"condition operator {operator!r} is not modelled")
    if_exists = base.endswith(IF_EXISTS)
    if if_exists:
        base = base[: -len(IF_EXISTS)]
    if base not in BASE_OPERATORS:
        return Unsupported(f"condition operator {operator!r} is not modelled")
    return set_prefix, base, if_exists


def _condition(operator: str, key: str, values: Any, context: Context) -> Verdict:
    """One operator applied to one key, with AWS's rules for absent keys and sets."""
    parsed = _parse_operator(operator)
    if isinstance(parsed, Unsupported):
        return parsed
    set_prefix, base, if_exists = parsed
    name = key.lower()
    if name not in CONTEXT_KEYS:
        return Unsupported(f"condition key {key!r} is not modelled")
    policy_values = _policy_values(values)
    if isinstance(policy_values, Unsupported):
        return policy_values
    present = context.get(name)
    if isinstance(present, Undeterminable):
        return Unsupported(f"{key} cannot be determined: {present.reason}")
    request_values = present or ()
    if set_prefix is None:
        if name in MULTIVALUED_KEYS:
            return Unsupported(
                f"{key} is multivalued: use ForAllValues:{operator} or ForAnyValue:{operator}"
            )
        if not request_values:
            # IAM: a missing key matches nothing, so only a negated operator holds.
            return if_exists or base in NEGATED_OPERATORS
        if len(request_values) > 1:
            return Unsupported(f"{key} has several values: use a set operator")
        return _value_matches(base, request_values[0], policy_values)
    if set_prefix == "ForAllValues":
        return all(_value_matches(base, v, policy_values) for v in request_values)
    if not request_values:
        return if_exists
    return any(_value_matches(base, v, policy_values) for v in request_values)


def condition_holds(block: Any, context: Context) -> Verdict:
    """A statement's ``Condition`` element: every operator and key must hold (AND).

    A condition that is false decides (the statement does not apply whatever the
    rest says); otherwise anything not evaluable makes the block :class:`Unsupported`.
    """
    if not isinstance(block, Mapping):
        return Unsupported("the Condition element is not an object")
    unsupported: Unsupported | None = None
    for operator, keys in block.items():
        if not isinstance(keys, Mapping):
            return Unsupported(f"condition {operator!r} is not an object")
        for key, values in keys.items():
            verdict = _condition(str(operator), str(key), values, context)
            if verdict is False:
                return False
            if isinstance(verdict, Unsupported) and unsupported is None:
                unsupported = verdict
    return unsupported or True


def _matches_any(patterns: Any, match: Callable[[str], bool]) -> Verdict:
    unsupported: Unsupported | None = None
    for pattern in _as_list(patterns):
        if not isinstance(pattern, str):
            return Unsupported(f"{pattern!r} is not a string")
        if "${" in pattern:
            unsupported = Unsupported(f"policy variable in {pattern!r} is not modelled")
        elif match(pattern):
            return True
    return unsupported or False


def _negate(verdict: Verdict) -> Verdict:
    return verdict if isinstance(verdict, Unsupported) else not verdict


def statement_applies(statement: Any, check: Check) -> Verdict:
    """Whether a statement covers the check's action, resource and context."""
    if not isinstance(statement, Mapping):
        return Unsupported("the statement is not an object")
    action: Verdict
    if "Action" in statement:
        action = _matches_any(
            statement["Action"], lambda p: wildcard_match(p, check.action, ignore_case=True)
        )
    elif "NotAction" in statement:
        action = _negate(
            _matches_any(
                statement["NotAction"], lambda p: wildcard_match(p, check.action, ignore_case=True)
            )
        )
    else:
        return Unsupported("the statement has no Action or NotAction")
    if action is not True:
        return action
    resource: Verdict
    if "Resource" in statement:
        resource = _matches_any(
            statement["Resource"], lambda p: resource_matches(p, check.resource)
        )
    elif "NotResource" in statement:
        resource = _negate(
            _matches_any(statement["NotResource"], lambda p: resource_matches(p, check.resource))
        )
    else:
        return Unsupported("the statement has no Resource or NotResource")
    if resource is False:
        return False
    conditions = (
        condition_holds(statement["Condition"], check.context) if "Condition" in statement else True
    )
    if conditions is False:
        return False
    if isinstance(resource, Unsupported):
        return resource
    return conditions


def decide(documents: Iterable[tuple[str, Any]], check: Check) -> Decision:
    """AWS's evaluation of identity policies for one check: explicit Deny, else Allow, else deny.

    ``documents`` are (label, parsed policy document) pairs; a statement that
    cannot be evaluated grants nothing if it allows and applies if it denies,
    and is reported in :attr:`Decision.notes`.
    """
    allowed = False
    notes: list[str] = []
    for label, document in documents:
        statements = document.get("Statement", []) if isinstance(document, Mapping) else None
        if statements is None:
            notes.append(f"{label}: not a policy document; treated as a Deny")
            return Decision(Outcome.EXPLICIT_DENY, tuple(notes))
        for index, statement in enumerate(_as_list(statements)):
            verdict = statement_applies(statement, check)
            if verdict is False:
                continue
            effect = statement.get("Effect") if isinstance(statement, Mapping) else None
            sid = statement.get("Sid", index) if isinstance(statement, Mapping) else index
            where = f"policy {label!r} statement {sid!r}"
            if isinstance(verdict, Unsupported):
                if effect == "Allow":
                    notes.append(f"{where}: {verdict.reason}; it grants nothing")
                    continue
                notes.append(f"{where}: {verdict.reason}; its Deny applies")
                return Decision(Outcome.EXPLICIT_DENY, tuple(notes))
            if effect == "Allow":
                allowed = True
            elif effect == "Deny":
                return Decision(Outcome.EXPLICIT_DENY, tuple(notes))
            else:
                notes.append(
                    f"{where}: Effect {effect!r} is neither Allow nor Deny; treated as Deny"
                )
                return Decision(Outcome.EXPLICIT_DENY, tuple(notes))
    return Decision(Outcome.ALLOWED if allowed else Outcome.IMPLICIT_DENY, tuple(notes))


# --------------------------------------------------------------------------
# DynamoDB expressions: the attribute names a request names
# --------------------------------------------------------------------------

_TOKEN = re.compile(
    r"""\s*(?:
        (?P<name>\#[A-Za-z0-9_]+)
      | (?P<value>:[A-Za-z0-9_]+)
      | (?P<word>[A-Za-z_][A-Za-z0-9_]*)
      | (?P<number>[0-9]+)
      | (?P<symbol><>|<=|>=|[=<>(),.\[\]+-])
    )\s*""",
    re.VERBOSE,
)


def _tokens(expression: str) -> list[tuple[str, str]]:
    """(kind, text) tokens of a DynamoDB expression; ValueError if it is not one."""
    tokens: list[tuple[str, str]] = []
    position = 0
    while position < len(expression):
        match = _TOKEN.match(expression, position)
        if match is None or match.end() == position:
            if not expression[position:].strip():
                break
            raise ValueError(f"cannot read expression {expression!r} at {position}")
        kind = match.lastgroup or ""
        tokens.append((kind, match.group(kind)))
        position = match.end()
    return tokens


def _top_level_names(
    tokens: list[tuple[str, str]], names: Mapping[str, str] | None
) -> Iterable[tuple[int, str]]:
    """(token index, attribute name) of each path's first segment."""
    for index, (kind, text) in enumerate(tokens):
        if kind not in ("name", "word"):
            continue
        if index and tokens[index - 1][1] == ".":
            continue  # b.c: a nested attribute, not a top-level one
        if kind == "word":
            following = tokens[index + 1][1] if index + 1 < len(tokens) else None
            if text.upper() in EXPRESSION_KEYWORDS or following == "(":
                continue  # a keyword or a function such as list_append(
            yield index, text
            continue
        if not names or text not in names:
            raise ValueError(f"{text} is not in ExpressionAttributeNames")
        yield index, names[text]


def expression_attribute_names(expression: str, names: Mapping[str, str] | None = None) -> set[str]:
    """The top-level attribute names an expression refers to.

    ``#placeholders`` resolve through ``names`` (ExpressionAttributeNames); of a
    path ``a.b[0]`` only ``a`` counts; ``:values``, keywords in any case and
    function names are not attributes. ValueError if the expression cannot be read.
    """
    return {name for _, name in _top_level_names(_tokens(expression), names)}


def partition_key_values(
    expression: str,
    partition_key: str,
    names: Mapping[str, str] | None,
    values: Mapping[str, Any] | None,
) -> list[Any]:
    """The values a KeyConditionExpression sets the partition key equal to."""
    tokens = _tokens(expression)
    found = []
    for index, name in _top_level_names(tokens, names):
        if name != partition_key:
            continue
        after = tokens[index + 1 : index + 3]
        before = tokens[max(index - 2, 0) : index]
        for pair in (after, list(reversed(before))):
            if len(pair) == 2 and pair[0][1] == "=" and pair[1][0] == "value":
                if not values or pair[1][1] not in values:
                    raise ValueError(f"{pair[1][1]} is not in ExpressionAttributeValues")
                found.append(values[pair[1][1]])
    return found


# --------------------------------------------------------------------------
# Requests -> checks
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class TableKeys:
    """A table's partition key, and each index's, for ``dynamodb:LeadingKeys``."""

    partition_key: str
    index_partition_keys: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Where:
    """Where a request is made: ARNs are built from these."""

    partition: str
    region: str
    account: str


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


def _item_context(
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


def _table(where: Where, name: Any) -> tuple[str, str]:
    """(table ARN, table name) of a TableName, which may itself be the table's ARN."""
    if not isinstance(name, str) or not name:
        raise NotModelled("the request names no table")
    if name.startswith("arn:"):
        return name, name.partition(":table/")[2]
    return f"arn:{where.partition}:dynamodb:{where.region}:{where.account}:table/{name}", name


def dynamodb_checks(
    operation: str,
    params: Mapping[str, Any],
    where: Where,
    keys_of: Callable[[str], TableKeys | None],
    base: Context,
) -> list[Check]:
    """The checks of a DynamoDB request (item, table, batch and transaction operations)."""
    if operation in DYNAMODB_ACCOUNT_OPERATIONS:
        return [Check(f"dynamodb:{operation}", "*", dict(base))]
    if operation in DYNAMODB_TABLE_OPERATIONS:
        arn, name = _table(where, params.get("TableName"))
        index = params.get("IndexName") if operation in ("Query", "Scan") else None
        if index:
            arn = f"{arn}/index/{index}"
        context = _item_context(operation, params, keys_of(name), base)
        return [Check(f"dynamodb:{operation}", arn, context)]
    if operation in ("BatchGetItem", "BatchWriteItem"):
        requests = params.get("RequestItems")
        if not isinstance(requests, Mapping) or not requests:
            raise NotModelled(f"{operation} without RequestItems")
        checks = []
        for table_name, request in requests.items():
            arn, name = _table(where, table_name)
            checks.append(
                Check(f"dynamodb:{operation}", arn, _batch_context(request, keys_of(name), base))
            )
        return checks
    if operation in ("TransactGetItems", "TransactWriteItems"):
        checks = []
        for element in params.get("TransactItems") or []:
            if not isinstance(element, Mapping) or len(element) != 1:
                raise NotModelled(f"{operation} element {element!r}")
            ((kind, request),) = element.items()
            if kind not in TRANSACT_ACTIONS or not isinstance(request, Mapping):
                raise NotModelled(f"{operation} element {kind!r}")
            action = TRANSACT_ACTIONS[kind]
            arn, name = _table(where, request.get("TableName"))
            checks.append(
                Check(
                    f"dynamodb:{action}", arn, _item_context(action, request, keys_of(name), base)
                )
            )
        if not checks:
            raise NotModelled(f"{operation} without TransactItems")
        return checks
    raise NotModelled(f"dynamodb:{operation} is not modelled")


def _batch_context(request: Any, keys: TableKeys | None, base: Context) -> dict[str, ContextValue]:
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


def stream_checks(
    operation: str,
    params: Mapping[str, Any],
    stream_of: Callable[[str], str | None],
    base: Context,
) -> list[Check]:
    """The checks of a DynamoDB Streams request (its actions are ``dynamodb:`` ones)."""
    if operation in DYNAMODB_ACCOUNT_OPERATIONS:
        return [Check(f"dynamodb:{operation}", "*", dict(base))]
    if operation in ("DescribeStream", "GetShardIterator"):
        arn = params.get("StreamArn")
        if not isinstance(arn, str):
            raise NotModelled(f"{operation} without StreamArn")
        return [Check(f"dynamodb:{operation}", arn, dict(base))]
    if operation == "GetRecords":
        iterator = params.get("ShardIterator")
        arn = stream_of(iterator) if isinstance(iterator, str) else None
        if arn is None:
            raise NotModelled("GetRecords with a shard iterator moto does not know")
        return [Check("dynamodb:GetRecords", arn, dict(base))]
    raise NotModelled(f"dynamodb:{operation} (streams) is not modelled")


# --------------------------------------------------------------------------
# moto glue
# --------------------------------------------------------------------------

_lock = threading.Lock()
#: moto's own authorisation, under "authorise", once this layer replaced it.
_installed: dict[str, Any] = {}
#: S3 keys ("bucket/key") a DeleteObjects request may not delete, while moto deletes.
_denied_deletes = threading.local()
#: Attribute on moto's S3Response holding those keys between authorisation and deletion.
DENIED_DELETES_ATTRIBUTE = "_chromasync_denied_deletes"


def _documents(policies: Iterable[Any]) -> list[tuple[str, Any]]:
    """moto's policies of a principal (inline dicts, inline strings, managed Policy) as JSON."""
    from moto.iam.models import Policy

    documents = []
    for policy in policies:
        if isinstance(policy, Policy):
            label = policy.name
            text: Any = next(v for v in policy.versions if v.is_default).document
        elif isinstance(policy, str):
            label, text = "inline role policy", policy
        else:
            label, text = policy.get("policy_name", "inline policy"), policy["policy_document"]
        try:
            documents.append((label, json.loads(text) if isinstance(text, str) else text))
        except ValueError:
            documents.append((label, None))
    return documents


def _where(response: Any) -> Where:
    from moto.utilities.utils import get_partition

    return Where(get_partition(response.region), response.region, response.current_account)


def _json_params(response: Any) -> dict[str, Any]:
    try:
        params = json.loads(response.raw_body or b"{}")
    except ValueError as exc:
        raise NotModelled(f"the request body is not JSON: {exc}") from exc
    if not isinstance(params, dict):
        raise NotModelled("the request body is not a JSON object")
    return params


def _dynamodb_keys(where: Where) -> Callable[[str], TableKeys | None]:
    from moto.dynamodb.models import dynamodb_backends

    def keys_of(name: str) -> TableKeys | None:
        table = dynamodb_backends[where.account][where.region].tables.get(name)
        if table is None:
            return None
        indexes = {}
        for index in [*table.indexes, *table.global_indexes]:
            hashes = [k["AttributeName"] for k in index.schema if k["KeyType"] == "HASH"]
            indexes[index.name] = hashes[0] if hashes else ""
        return TableKeys(table.hash_key_attr, indexes)

    return keys_of


def _stream_of(where: Where) -> Callable[[str], str | None]:
    from moto.dynamodbstreams.models import dynamodbstreams_backends

    def stream_of(iterator: str) -> str | None:
        backend = dynamodbstreams_backends[where.account][where.region]
        if iterator not in backend.shard_iterators:
            return None
        # moto keys an iterator by "<stream ARN>|1|<id>", as AWS's iterators start.
        return iterator.split("|", 1)[0]

    return stream_of


def _delete_objects_keys(body: Any) -> list[str]:
    """The keys of a DeleteObjects (POST ?delete) request body."""
    try:
        root = ElementTree.fromstring(body)
    except (ElementTree.ParseError, TypeError) as exc:
        raise NotModelled(f"DeleteObjects body is not XML: {exc}") from exc
    keys = [
        element.text or "" for element in root.iter() if element.tag.rpartition("}")[2] == "Key"
    ]
    if not keys:
        raise NotModelled("DeleteObjects names no key")
    return keys


def _s3_checks(response: Any, operation: str | None, resource: str, base: Context) -> list[Check]:
    if operation == "DeleteObjects":  # moto passes the bucket's ARN
        keys = _delete_objects_keys(response.body)
        return [Check("s3:DeleteObject", f"{resource}/{key}", dict(base)) for key in keys]
    if operation not in S3_ACTIONS:
        raise NotModelled(f"s3:{operation} is not modelled")
    if operation in S3_ACCOUNT_OPERATIONS:
        resource = "*"
    return [Check(f"s3:{S3_ACTIONS[operation]}", resource, dict(base))]


def _sqs_checks(response: Any, operation: str | None, resource: str, base: Context) -> list[Check]:
    if operation is None:
        raise NotModelled("an SQS request moto cannot name")
    action = f"sqs:{SQS_ACTIONS.get(operation, operation)}"
    if operation in SQS_ACCOUNT_OPERATIONS:
        return [Check(action, "*", dict(base))]
    if operation in SQS_QUEUE_NAME_OPERATIONS:
        name = response._get_param("QueueName")
        if not isinstance(name, str) or not name:
            raise NotModelled(f"{operation} without QueueName")
        where = _where(response)
        account = response._get_param("QueueOwnerAWSAccountId") or where.account
        return [
            Check(action, f"arn:{where.partition}:sqs:{where.region}:{account}:{name}", dict(base))
        ]
    return [Check(action, resource, dict(base))]


def request_checks(
    response: Any, operation: str | None, moto_action: str, resource: str
) -> list[Check]:
    """The checks of the request moto's ``response`` handles; NotModelled if it cannot tell.

    ``moto_action`` and ``resource`` are what moto would check, kept for the
    services not modelled here.
    """
    secure = urlparse(str(response.uri)).scheme == "https"
    base: Context = {"aws:securetransport": ("true" if secure else "false",)}
    service = response.service_name
    if service not in MODELLED_SERVICES:
        return [Check(moto_action, resource, dict(base))]
    if service == "s3":
        return _s3_checks(response, operation, resource, base)
    if service == "sqs":
        return _sqs_checks(response, operation, resource, base)
    if operation is None:
        raise NotModelled(f"a {service} request moto cannot name")
    where = _where(response)
    if service == "dynamodbstreams":
        return stream_checks(operation, _json_params(response), _stream_of(where), base)
    return dynamodb_checks(operation, _json_params(response), where, _dynamodb_keys(where), base)


def _json_protocol(response: Any) -> bool:
    """DynamoDB and Streams speak JSON; SQS too when boto3 sends X-Amz-Target."""
    service = response.service_name
    return service in ("dynamodb", "dynamodbstreams") or (
        service == "sqs" and "X-Amz-Target" in response.headers
    )


def _json_error(response: Any, code: str, message: str, status: int) -> Exception:
    """An error as the service's JSON protocol sends it, with SQS's query-compatible code."""
    from moto.core.exceptions import JsonRESTError

    error = JsonRESTError(code, message)
    error.code = status
    if response.service_name == "sqs":
        response.response_headers["x-amzn-query-error"] = f"{code};Sender"
    return error


def _deny(response: Any, iam_request: Any, check: Check, outcome: Outcome) -> None:
    """Raise the service's AccessDenied error, worded as AWS words it."""
    from moto.core.exceptions import AccessDeniedError

    user = iam_request._access_key.arn
    message = (
        f"User: {user} is not authorized to perform: {check.action} on resource: "
        f"{check.resource} because {outcome.value}"
    )
    if outcome is Outcome.IMPLICIT_DENY:
        message += f" the {check.action} action"
    if _json_protocol(response):
        raise _json_error(response, JSON_ACCESS_DENIED[response.service_name], message, 403)
    if response.service_name == "sqs":
        raise AccessDeniedError(user_arn=user, action=f"{check.action} on {check.resource}")
    iam_request._raise_access_denied()  # S3's own errors, and other services'


def _authenticate(response: Any, iam_request_cls: type, operation: str | None) -> Any:
    """moto's IAM request for ``response``: the access key must exist and the signature match."""
    from moto.core.exceptions import InvalidClientTokenIdError, SignatureDoesNotMatchError

    parsed = urlparse(response.uri)
    path = response.raw_path + (f"?{parsed.query}" if parsed.query else "")
    try:
        iam_request = iam_request_cls(
            account_id=response.current_account,
            method=response.method,
            path=path,
            data=response.data,
            body=response.raw_body,
            headers=response.headers,
            action=operation,
        )
        iam_request.check_signature()
    except (InvalidClientTokenIdError, SignatureDoesNotMatchError) as exc:
        if not _json_protocol(response):
            raise
        raise _json_error(response, exc.error_type, exc.message, exc.code) from None
    return iam_request


def _note(iam_request: Any, check: Check, text: str) -> None:
    user = getattr(iam_request._access_key, "arn", "?")
    log.warning("%s %s on %s: %s", user, check.action, check.resource, text)


def _authorise(response: Any, iam_request_cls: type, resource: str = "*") -> None:
    """Replacement of moto's ``_authenticate_and_authorize_action`` (see the module docstring)."""
    from moto import settings
    from moto.core.authorization import ActionAuthenticatorMixin

    if ActionAuthenticatorMixin.request_count < settings.INITIAL_NO_AUTH_ACTION_COUNT:
        _installed["authorise"](response, iam_request_cls, resource)  # moto counts it
        return
    if response.headers.get("X-Amz-Target") in ActionAuthenticatorMixin.PUBLIC_OPERATIONS:
        return
    operation = response._get_action()
    iam_request = _authenticate(response, iam_request_cls, operation)
    if iam_request._action == "sts:GetCallerIdentity":
        return  # AWS answers it whatever the policies say
    try:
        checks = request_checks(response, operation, iam_request._action, resource)
    except NotModelled as exc:
        check = Check(iam_request._action, resource)
        _note(iam_request, check, f"{exc}; denied")
        _deny(response, iam_request, check, Outcome.IMPLICIT_DENY)
        return
    documents = _documents(iam_request._access_key.collect_policies())
    deleting = response.service_name == "s3" and operation == "DeleteObjects"
    denied_deletes: set[str] = set()
    for check in checks:
        decision = decide(documents, check)
        for note in decision.notes:
            _note(iam_request, check, note)
        permitted = decision.outcome is Outcome.ALLOWED
        if permitted and iam_request._is_assuming_role_operation(check.resource):
            permitted = iam_request._check_role_trust_relationship(check.resource)
        if permitted:
            continue
        if deleting:  # AWS answers DeleteObjects with an AccessDenied per key
            denied_deletes.add(check.resource.partition(":::")[2])
            continue
        _deny(response, iam_request, check, decision.outcome)
    if denied_deletes:
        setattr(response, DENIED_DELETES_ATTRIBUTE, frozenset(denied_deletes))


def _patch_delete_objects() -> None:
    """Make moto's DeleteObjects refuse, key by key, the keys :func:`_authorise` denied.

    moto authorises DeleteObjects once on the bucket (as ``s3:DeleteObjects``,
    no IAM action) and then asks the bucket's policy about each key; the keys
    denied by identity policies are answered DENIED there for this request only.
    """
    from moto.iam.access_control import PermissionResult
    from moto.s3.models import FakeBucket
    from moto.s3.responses import S3Response

    delete_keys = S3Response._bucket_response_delete_keys
    get_permission = FakeBucket.get_permission

    def _bucket_response_delete_keys(
        self: Any, bucket_name: str, authenticated: bool = True
    ) -> Any:
        _denied_deletes.keys = getattr(self, DENIED_DELETES_ATTRIBUTE, frozenset())
        try:
            return delete_keys(self, bucket_name, authenticated)
        finally:
            _denied_deletes.keys = frozenset()

    def get_permission_(self: Any, action: str, resource: str) -> Any:
        denied: frozenset[str] = getattr(_denied_deletes, "keys", frozenset())
        if action == "s3:DeleteObject" and resource.partition(":::")[2] in denied:
            return PermissionResult.DENIED
        return get_permission(self, action, resource)

    S3Response._bucket_response_delete_keys = _bucket_response_delete_keys  # type: ignore[method-assign]
    FakeBucket.get_permission = get_permission_  # type: ignore[method-assign]


def install_iam_layer() -> None:
    """Patch moto's authorisation with this layer (idempotent).

    While enforcement is off the replacement only compares moto's request count
    with its limit and hands the request to moto, as moto itself does first.
    """
    from moto.core.authorization import ActionAuthenticatorMixin

    with _lock:
        if _installed:
            return
        if not log.handlers:
            handler = logging.StreamHandler(sys.stderr)
            handler.setFormatter(logging.Formatter("%(name)s: %(message)s"))
            log.addHandler(handler)
            log.setLevel(logging.INFO)
            log.propagate = False
        _installed["authorise"] = ActionAuthenticatorMixin._authenticate_and_authorize_action
        _patch_delete_objects()
        ActionAuthenticatorMixin._authenticate_and_authorize_action = _authorise  # type: ignore[method-assign,assignment]
        log.info("IAM fidelity layer installed")


def install_on_demand() -> None:
    """Install the layer now if moto enforces IAM from the start, else when reset-auth asks.

    ``INITIAL_NO_AUTH_ACTION_COUNT`` in the environment is a finite count: moto
    enforces after that many requests. ``/moto-api/reset-auth`` sets a new count;
    the layer is installed before moto applies it, so no request in between is
    authorised moto's way. Must run before moto's API routes are first used.
    """
    from moto import settings
    from moto.moto_api._internal.responses import MotoAPIResponse

    if math.isfinite(settings.INITIAL_NO_AUTH_ACTION_COUNT):
        install_iam_layer()
    reset_auth = MotoAPIResponse.reset_auth_response

    def reset_auth_response(self: Any, request: Any, full_url: str, headers: Any) -> Any:
        if request.method == "POST":
            try:
                count = float(request.data.decode())
            except ValueError:
                count = math.inf  # moto answers the error
            if math.isfinite(count):
                install_iam_layer()
        return reset_auth(self, request, full_url, headers)

    MotoAPIResponse.reset_auth_response = reset_auth_response  # type: ignore[method-assign]


__all__ = [
    "Check",
    "Context",
    "Decision",
    "NotModelled",
    "Outcome",
    "TableKeys",
    "Undeterminable",
    "Unsupported",
    "Where",
    "condition_holds",
    "decide",
    "dynamodb_checks",
    "expression_attribute_names",
    "install_iam_layer",
    "install_on_demand",
    "partition_key_values",
    "request_checks",
    "resource_matches",
    "statement_applies",
    "stream_checks",
    "wildcard_match",
]
