"""Per-shard checkpoints of the stream poller, in DynamoDB, Redis or this process.

``CHROMASYNC_CHECKPOINT_URL`` picks the store: ``dynamodb://TABLE`` (default
:data:`DEFAULT_CHECKPOINT_URL`), ``redis://HOST:PORT/DB`` or ``memory://NAME`` (kept
by this process only, gone when it exits: for tests and one-shot runs).
:func:`checkpoint_store_from_env` turns it into a
:class:`~producers.checkpoints.backend.CheckpointStore`, so the poller never needs
to know which one it got.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlsplit

from chromasync.core.config import AwsSettings, ConfigError, env_url
from producers.checkpoints.backend import CheckpointStore

#: Where checkpoints live unless ``CHROMASYNC_CHECKPOINT_URL`` says otherwise.
DEFAULT_CHECKPOINT_URL = "dynamodb://chromasync-checkpoints"
#: What the part after ``scheme://`` names, per scheme that names one.
_NAMED = {"dynamodb": "table (dynamodb://TABLE)", "memory": "store (memory://NAME)"}


@dataclass(frozen=True)
class CheckpointLocation:
    """What ``CHROMASYNC_CHECKPOINT_URL`` names."""

    url: str
    kind: Literal["dynamodb", "redis", "memory"]
    #: The DynamoDB table or the in-process store's name; empty for Redis.
    name: str = ""


def checkpoint_location(env: Mapping[str, str] | None = None) -> CheckpointLocation:
    """``CHROMASYNC_CHECKPOINT_URL`` read and checked; :class:`ConfigError` if unusable."""
    env = os.environ if env is None else env
    url = env_url(env, "CHROMASYNC_CHECKPOINT_URL", DEFAULT_CHECKPOINT_URL, {*_NAMED, "redis"})
    assert url is not None
    parts = urlsplit(url)
    if parts.scheme == "redis":
        return CheckpointLocation(url, "redis")
    kind: Literal["dynamodb", "memory"] = "memory" if parts.scheme == "memory" else "dynamodb"
    name = parts.netloc or parts.path.lstrip("/")
    if not name:
        raise ConfigError(f"CHROMASYNC_CHECKPOINT_URL={url!r} names no {_NAMED[kind]}")
    return CheckpointLocation(url, kind, name)


def checkpoint_table(env: Mapping[str, str] | None = None) -> str | None:
    """The DynamoDB table ``CHROMASYNC_CHECKPOINT_URL`` names (for provisioning), else None."""
    location = checkpoint_location(env)
    return location.name if location.kind == "dynamodb" else None


def checkpoint_store_from_env(
    env: Mapping[str, str] | None = None, aws: AwsSettings | None = None
) -> CheckpointStore:
    """The store ``CHROMASYNC_CHECKPOINT_URL`` names; it creates nothing.

    ``aws`` says where DynamoDB is (defaults to ``env``). Stores of one
    ``memory://NAME`` in one process share their checkpoints.
    """
    env = os.environ if env is None else env
    location = checkpoint_location(env)
    if location.kind == "redis":
        from producers.checkpoints.backends.redis import RedisCheckpointStore

        return RedisCheckpointStore(location.url)
    if location.kind == "memory":
        from producers.checkpoints.backends.memory import MemoryCheckpointStore

        return MemoryCheckpointStore(location.name)
    from producers.checkpoints.backends.dynamodb import DynamoDBCheckpointStore

    return DynamoDBCheckpointStore(aws or AwsSettings.from_env(env), location.name)
