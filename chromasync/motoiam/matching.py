"""IAM's patterns: wildcards in actions, values and ARNs, and elements of one or many values."""

from __future__ import annotations

import functools
import re
from typing import Any


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


def as_list(value: Any) -> list[Any]:
    """A policy element that may be written as one value or a list of them, as a list."""
    return value if isinstance(value, list) else [value]
