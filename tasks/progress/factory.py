"""The progress store living in the lock store that ``CHROMASYNC_LOCK_URL`` names."""

from __future__ import annotations

from typing import Any

from chromasync.core.config import AwsSettings
from tasks.locks import lock_location
from tasks.progress.backend import ProgressStore


def progress_store_from_url(
    lock_url: str, aws: AwsSettings | None = None, timeout: float = 2.0, config: Any = None
) -> ProgressStore:
    """``dynamodb://TABLE``, ``memory://NAME`` or a Redis URL; nothing is connected yet.

    The URL is read by the lock package's rules (:class:`ConfigError` if unusable).
    ``timeout`` (Redis) and ``config`` (DynamoDB's botocore Config) make a probe short.
    """
    location = lock_location(lock_url)
    if location.kind == "dynamodb":
        from tasks.progress.backends.dynamodb import DynamoDBProgressStore

        return DynamoDBProgressStore(location.name, aws or AwsSettings.from_env(), config)
    if location.kind == "memory":
        from tasks.progress.backends.memory import MemoryProgressStore

        return MemoryProgressStore(location.name)
    from tasks.progress.backends.redis import RedisProgressStore

    return RedisProgressStore(lock_url.strip(), timeout)
