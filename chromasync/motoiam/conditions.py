"""A statement's ``Condition`` element, evaluated as IAM does for the keys modelled."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from chromasync.motoiam.matching import as_list, wildcard_match
from chromasync.motoiam.model import Context, Undeterminable, Unsupported, Verdict

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


def _policy_values(values: Any) -> tuple[str, ...] | Unsupported:
    """A condition's values as strings (JSON true/false and numbers as IAM reads them)."""
    out = []
    for value in as_list(values):
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
