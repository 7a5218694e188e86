"""Leases that keep one writer per collection, in Redis, DynamoDB or this process.

``CHROMASYNC_LOCK_URL`` picks the store; :func:`lock_backend_from_url` turns it
into a :class:`LockBackend`, so the worker never needs to know which one it got.
``memory://NAME`` serialises the threads of one process only (tests, in-process
runs); worker processes refuse it (:mod:`tasks.preflight`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlsplit

from botocore.config import Config

from chromasync.core.config import AwsSettings, ConfigError
from chromasync.core.urls import redact_url
from tasks.locks.backend import Lease, LockBackend, LockBackendError, LockInfo
from tasks.locks.backends.dynamodb import DynamoDBLockBackend
from tasks.locks.backends.memory import MemoryLockBackend
from tasks.locks.backends.redis import RedisLockBackend

__all__ = [
    "ACCEPTED_FORMS",
    "DynamoDBLockBackend",
    "Lease",
    "LockBackend",
    "LockBackendError",
    "LockInfo",
    "LockLocation",
    "MemoryLockBackend",
    "RedisLockBackend",
    "lock_backend_from_url",
    "lock_location",
    "lock_table",
]

#: The URL forms ``CHROMASYNC_LOCK_URL`` accepts, shown in configuration errors.
ACCEPTED_FORMS = (
    "redis://[:PASSWORD@]HOST[:PORT][/DB]",
    "rediss://[:PASSWORD@]HOST[:PORT][/DB]",
    "dynamodb://TABLE",
    "memory://NAME",
)
#: DynamoDB's own rule for table names.
_TABLE_NAME = re.compile(r"[A-Za-z0-9_.-]{3,255}")
#: Names of in-process stores: letters, digits, '_', '-', '.'.
_MEMORY_NAME = re.compile(r"[A-Za-z0-9_.-]+")
#: What the host part of each named-store scheme is, for messages.
_WHAT = {"dynamodb": "DynamoDB table", "memory": "in-process store name"}


@dataclass(frozen=True)
class LockLocation:
    """What a lock URL names: the kind of store and the DynamoDB table or in-process store."""

    kind: Literal["redis", "dynamodb", "memory"]
    #: The table (``dynamodb://``) or store name (``memory://``); empty for Redis.
    name: str = ""


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
    Backends of one ``memory://NAME`` in one process share their locks.
    """
    location = lock_location(url)
    if location.kind == "dynamodb":
        return DynamoDBLockBackend(location.name, aws, config=config)
    if location.kind == "memory":
        return MemoryLockBackend(location.name)
    if probe_timeout is not None:
        return RedisLockBackend(url.strip(), socket_timeout=probe_timeout, retries=0)
    return RedisLockBackend(url.strip())


def lock_table(url: str) -> str | None:
    """The DynamoDB table a lock URL names, else None; :class:`ConfigError` if unusable."""
    location = lock_location(url)
    return location.name if location.kind == "dynamodb" else None


def lock_location(url: str) -> LockLocation:
    """What a lock URL names; :class:`ConfigError` if it is unusable."""
    try:
        parts = urlsplit(url.strip())
    except ValueError:
        raise _bad_url(url, "is not a valid URL") from None
    scheme = parts.scheme.lower()
    if scheme in ("redis", "rediss"):
        if not parts.netloc:
            raise _bad_url(url, "names no Redis host")
        return LockLocation("redis")
    if scheme in ("dynamodb", "memory"):
        name = parts.netloc
        if not name:
            raise _bad_url(url, f"names no {_WHAT[scheme]}")
        if parts.path not in ("", "/") or parts.query or parts.fragment:
            raise _bad_url(url, f"has more than a {_WHAT[scheme]} after {scheme}://")
        if scheme == "memory":
            if not _MEMORY_NAME.fullmatch(name):
                raise _bad_url(url, "has an invalid store name (letters, digits, '_', '-', '.')")
            return LockLocation("memory", name)
        if not _TABLE_NAME.fullmatch(name):
            raise _bad_url(url, "has an invalid table name (3-255 letters, digits, '_', '-', '.')")
        return LockLocation("dynamodb", name)
    why = f"has an unsupported scheme {parts.scheme!r}" if scheme else "has no scheme"
    raise _bad_url(url, why)
