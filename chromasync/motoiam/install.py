"""Patching moto's server with the layer, when enforcement can start."""

from __future__ import annotations

import logging
import math
import sys
import threading
from typing import Any

from chromasync.motoiam.authorise import DENIED_DELETES_ATTRIBUTE, authorise, log, replaced

_lock = threading.Lock()
#: S3 keys ("bucket/key") a DeleteObjects request may not delete, while moto deletes.
_denied_deletes = threading.local()


def _patch_delete_objects() -> None:
    """Make moto's DeleteObjects refuse, key by key, the keys the layer denied.

    moto authorises DeleteObjects once on the bucket (as ``s3:DeleteObjects``,
    no IAM action) and then asks the bucket's policy about each key; the keys
    :func:`~chromasync.motoiam.authorise.authorise` denied by identity policies
    are answered DENIED there for this request only.
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
        if replaced:
            return
        if not log.handlers:
            handler = logging.StreamHandler(sys.stderr)
            handler.setFormatter(logging.Formatter("%(name)s: %(message)s"))
            log.addHandler(handler)
            log.setLevel(logging.INFO)
            log.propagate = False
        replaced["authorise"] = ActionAuthenticatorMixin._authenticate_and_authorize_action
        _patch_delete_objects()
        ActionAuthenticatorMixin._authenticate_and_authorize_action = authorise  # type: ignore[method-assign,assignment]
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
