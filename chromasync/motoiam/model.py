"""What the layer works with: checks, their context, verdicts and decisions.

Pure values, shared by the request side (which builds :class:`Check`) and the
policy side (which decides them).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum


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
