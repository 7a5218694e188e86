"""DynamoDB expressions: the attribute names a request names, and its partition key values."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

#: Words of the expression grammar that are not attribute names.
EXPRESSION_KEYWORDS = frozenset(
    {"SET", "REMOVE", "ADD", "DELETE", "AND", "OR", "NOT", "BETWEEN", "IN"}
)


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
