"""Statements matched against a check, and AWS's decision over identity policies."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from chromasync.motoiam.conditions import condition_holds
from chromasync.motoiam.matching import as_list, resource_matches, wildcard_match
from chromasync.motoiam.model import Check, Decision, Outcome, Unsupported, Verdict


def _matches_any(patterns: Any, match: Callable[[str], bool]) -> Verdict:
    unsupported: Unsupported | None = None
    for pattern in as_list(patterns):
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
        for index, statement in enumerate(as_list(statements)):
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
