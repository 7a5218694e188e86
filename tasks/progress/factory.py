"""The progress store living in the lock store that ``CHROMASYNC_LOCK_URL`` names."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from chromasync.core.config import AwsSettings
from tasks.progress.backend import ProgressStore


def progress_store_from_url(
    lock_url: str, aws: AwsSettings | None = None, timeout: float = 2.0, config: Any = None
) -> ProgressStore:
    """``dynamodb://TABLE``, ``memory://NAME`` or a Redis URL; nothing is connected yet.

    The URL is assumed valid (``tasks.locks.lock_backend_from_url`` checks it).
    ``timeout`` (Redis) and ``config`` (DynamoDB's botocore Config) make a probe short.
    """
    url = lock_url.strip()
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme == "dynamodb":
        from tasks.progress.backends.dynamodb import DynamoDBProgressStore

        return DynamoDBProgressStore(parts.netloc, aws or AwsSettings.from_env(), config)
    if scheme == "memory":
        from tasks.progress.backends.memory import MemoryProgressStore

        return MemoryProgressStore(parts.netloc)
    from tasks.progress.backends.redis import RedisProgressStore

    return RedisProgressStore(url, timeout)
