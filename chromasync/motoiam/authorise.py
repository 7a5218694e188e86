"""The replacement of moto's authorisation: authenticate as moto does, decide as AWS does.

A denial is answered with the service's own AccessDenied error, worded as AWS
words it; each statement that could not be evaluated is one line in the
server's log.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlparse

from chromasync.motoiam.checks import request_checks
from chromasync.motoiam.model import Check, NotModelled, Outcome
from chromasync.motoiam.policy import decide

#: The layer's log, one for the package (:func:`~chromasync.motoiam.install.install_iam_layer`
#: gives it a handler on the server's stderr).
log = logging.getLogger("chromasync.motoiam")

#: Code of a denied request in each service's JSON protocol, as AWS answers (boto3
#: shows SQS's query-compatible code, sent in the ``x-amzn-query-error`` header).
#: moto sends its XML error to these too, which boto3 can only report as "403".
JSON_ACCESS_DENIED = {
    "dynamodb": "AccessDeniedException",
    "dynamodbstreams": "AccessDeniedException",
    "sqs": "AccessDenied",
}
#: moto's own authorisation, under "authorise", once this layer replaced it
#: (:func:`~chromasync.motoiam.install.install_iam_layer`).
replaced: dict[str, Any] = {}
#: Attribute on moto's S3Response holding the S3 keys ("bucket/key") a DeleteObjects
#: request may not delete, from authorisation to the deletion (:mod:`~chromasync.motoiam.install`).
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


def authorise(response: Any, iam_request_cls: type, resource: str = "*") -> None:
    """Replacement of moto's ``_authenticate_and_authorize_action`` (see the module docstring)."""
    from moto import settings
    from moto.core.authorization import ActionAuthenticatorMixin

    if ActionAuthenticatorMixin.request_count < settings.INITIAL_NO_AUTH_ACTION_COUNT:
        replaced["authorise"](response, iam_request_cls, resource)  # moto counts it
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
