"""Progress in the Redis lock store: the hash ``chromasync:progress:collection:{collection}``.

The fence check and the write are one Lua script, so two workers recording
at once cannot both win.
"""

from __future__ import annotations

from chromasync.core.urls import redact_url
from tasks.progress.backend import AppliedBatch, ProgressStore, progress_name

# KEYS[1] progress hash; ARGV[1] fence, ARGV[2] the record as JSON.
# Replace only when the stored fence is lower (or absent); returns 1 when written.
_RECORD = """
local stored = redis.call('HGET', KEYS[1], 'fence')
if stored and tonumber(stored) >= tonumber(ARGV[1]) then
  return 0
end
redis.call('HSET', KEYS[1], 'fence', ARGV[1], 'record', ARGV[2])
return 1
"""


class RedisProgressStore(ProgressStore):
    def __init__(self, url: str, timeout: float = 2.0) -> None:
        import redis
        from redis.backoff import NoBackoff
        from redis.retry import Retry

        self.where = f"Redis lock store at {redact_url(url)}"
        self._client = redis.Redis.from_url(
            url,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            retry=Retry(NoBackoff(), 1),
        )
        self._record = self._client.register_script(_RECORD)

    @staticmethod
    def key(collection: str) -> str:
        return f"chromasync:{progress_name(collection)}"

    def record(self, applied: AppliedBatch) -> bool:
        done = self._record(
            keys=[self.key(applied.collection)], args=[applied.fence, applied.to_json()]
        )
        return bool(done)

    def last(self, collection: str) -> AppliedBatch | None:
        raw = self._client.hget(self.key(collection), "record")
        return AppliedBatch.from_json(raw) if raw else None

    def close(self) -> None:
        self._client.close()
