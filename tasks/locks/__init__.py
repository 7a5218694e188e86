"""Leases that keep one writer per collection, in Redis or DynamoDB.

``CHROMASYNC_LOCK_URL`` picks the store; :func:`lock_backend_from_url` turns it
into a :class:`LockBackend`, so the worker never needs to know which one it got.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from botocore.config import Config

from chromasync.core.config import AwsSettings, ConfigError
from chromasync.core.urls import redact_url
from tasks.locks.backend import Lease, LockBackend, LockBackendError, LockInfo
from tasks.locks.backends.dynamodb import DynamoDBLockBackend
from tasks.locks.backends.redis import RedisLockBackend

__all__ = [
    "ACCEPTED_FORMS",
    "DynamoDBLockBackend",
    "Lease",
    "LockBackend",
    "LockBackendError",
    "LockInfo",
    "RedisLockBackend",
    "lock_backend_from_url",
    "lock_table",
]

#: The URL forms ``CHROMASYNC_LOCK_URL`` accepts, shown in configuration errors.
ACCEPTED_FORMS = (
    "redis://[:PASSWORD@]HOST[:PORT][/DB]",
    "rediss://[:PASSWORD@]HOST[:PORT][/DB]",
    "dynamodb://TABLE",
)
#: DynamoDB's own rule for table names.
_TABLE_NAME = re.compile(r"[A-Za-z0-9_.-]{3,255}")


def _bad_url(url: str, why: str) -> ConfigError:
    return ConfigError(
        f"CHROMASYNC_LOCK_URL={redact_url(url)!r} {why}; expected one of "
        + ", ".join(ACCEPTED_FORMS)
    )


def lock_backend_from_url(
    url: str,
    aws: AwsSettings | None = None,
    *,
    probe_timeout: float | None = None,
    config: Config | None = None,
) -> LockBackend:
    """The backend for a lock URL; it opens connections lazily and creates nothing.

    ``aws`` says where DynamoDB is (defaults to the environment); Redis ignores it.
    For a probe (``chromasync status``, the exporter): ``probe_timeout`` makes
    Redis answer within that many seconds without retries, ``config`` is
    DynamoDB's botocore Config. Raises :class:`ConfigError` for a URL it cannot
    use. A DynamoDB lock table is made by ``chromasync provision``; using a
    missing one raises :class:`~chromasync.core.resources.MissingResource`.
    """
    table = lock_table(url)
    if table is not None:
        return DynamoDBLockBackend(table, aws, config=config)
    if probe_timeout is not None:
        return RedisLockBackend(url.strip(), socket_timeout=probe_timeout, retries=0)
    return RedisLockBackend(url.strip())


def lock_table(url: str) -> str | None:
    """The DynamoDB table a lock URL names, None for Redis; :class:`ConfigError` if unusable."""
    try:
        parts = urlsplit(url.strip())
    except ValueError:
        raise _bad_url(url, "is not a valid URL") from None
    scheme = parts.scheme.lower()
    if scheme in ("redis", "rediss"):
        if not parts.netloc:
            raise _bad_url(url, "names no Redis host")
        return None
    if scheme == "dynamodb":
        table = parts.netloc
        if not table:
            raise _bad_url(url, "names no DynamoDB table")
        if parts.path not in ("", "/") or parts.query or parts.fragment:
            raise _bad_url(url, "has more than a table name after dynamodb://")
        if not _TABLE_NAME.fullmatch(table):
            raise _bad_url(url, "has an invalid table name (3-255 letters, digits, '_', '-', '.')")
        return table
    why = f"has an unsupported scheme {parts.scheme!r}" if scheme else "has no scheme"
    raise _bad_url(url, why)
