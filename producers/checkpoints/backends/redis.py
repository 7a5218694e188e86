"""Checkpoints in Redis: one hash per shard, ``chromasync:checkpoint:{stream}|{shard}``.

The Redis client comes with ``chromasync[worker]``; it is imported when a store is
made, so the base install (the Lambda's) runs without it until a ``redis://``
checkpoint URL asks for it. Run that Redis with persistence and without eviction:
a lost checkpoint makes the poller start its shards over from the trim horizon.
"""

from __future__ import annotations

from producers.checkpoints.backend import CheckpointStore, shard_key

#: Prefix of every checkpoint hash.
KEY_PREFIX = "chromasync:checkpoint:"


class RedisCheckpointStore(CheckpointStore):
    """Checkpoints kept in Redis (``redis://HOST:PORT/DB`` URL)."""

    def __init__(self, url: str, prefix: str = KEY_PREFIX) -> None:
        import redis

        self.client = redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5)
        self.prefix = prefix

    def _key(self, stream_arn: str, shard_id: str) -> str:
        return f"{self.prefix}{shard_key(stream_arn, shard_id)}"

    def get(self, stream_arn: str, shard_id: str) -> str | None:
        value = self.client.hget(self._key(stream_arn, shard_id), "sequence_number")
        return value.decode() if isinstance(value, bytes) else None

    def put(self, stream_arn: str, shard_id: str, sequence_number: str) -> None:
        self.client.hset(self._key(stream_arn, shard_id), "sequence_number", sequence_number)

    def mark_closed(self, stream_arn: str, shard_id: str) -> None:
        self.client.hset(self._key(stream_arn, shard_id), "closed", "1")

    def is_closed(self, stream_arn: str, shard_id: str) -> bool:
        return self.client.hget(self._key(stream_arn, shard_id), "closed") == b"1"

    def close(self) -> None:
        self.client.close()
