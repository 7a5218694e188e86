"""Lock leases in Redis: one key per lock holding the owner token, expired by Redis itself.

Why this shape:

* ``chromasync:lock:{name}`` holds the owner token with a ``PX`` expiry, so the
  lease runs on the *Redis server's* clock; worker clocks do not matter here.
* ``chromasync:lock:{name}:fence`` is a counter bumped on every successful
  acquisition. It has no expiry and must never be evicted: run Redis with
  ``maxmemory-policy noeviction`` (or a ``volatile-*`` policy) and persistence,
  otherwise a reset counter would hand out an old fencing number again.
* Acquire, extend and release are Lua scripts so that "check the owner, then
  act" is one atomic step; a plain GET followed by DEL could delete a lock that
  expired and was taken by someone else in between.
* Socket timeouts and a short retry budget keep a dead Redis from hanging a
  worker; connection failures surface as :class:`LockBackendError` naming the
  URL (password hidden), which callers treat as transient.

The two keys of a lock are not hash-tagged, so this backend targets a single
Redis (or a primary with replicas), not Redis Cluster.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import redis
from redis.backoff import ExponentialBackoff
from redis.retry import Retry

from chromasync.core.urls import redact_url
from tasks.locks.backend import Lease, LockBackend, LockBackendError, LockInfo

#: Prefix of every lock key; the fence counter lives at ``<prefix><name>:fence``.
KEY_PREFIX = "chromasync:lock:"
#: Seconds to wait for a connect or a reply before declaring Redis unreachable.
DEFAULT_SOCKET_TIMEOUT = 5.0
#: Extra attempts after a connection error; small so a dead Redis fails within seconds.
DEFAULT_RETRIES = 2

# KEYS[1] lock key, KEYS[2] fence key; ARGV[1] owner, ARGV[2] ttl in ms.
# SET NX returns false (nil) when the key exists, so the fence only moves on success.
_ACQUIRE = """
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  return redis.call('INCR', KEYS[2])
end
return false
"""

# KEYS[1] lock key; ARGV[1] owner, ARGV[2] ttl in ms.
_EXTEND = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""

# KEYS[1] lock key; ARGV[1] owner.
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""

_T = TypeVar("_T")


def lock_key(name: str) -> str:
    return f"{KEY_PREFIX}{name}"


def fence_key(name: str) -> str:
    return f"{KEY_PREFIX}{name}:fence"


def _ttl_ms(ttl: float) -> int:
    if ttl <= 0:
        raise ValueError(f"lock ttl must be positive, got {ttl}")
    return max(1, round(ttl * 1000))


def _text(value: object) -> str | None:
    """A Redis reply as text; clients may or may not decode responses."""
    if value is None:
        return None
    return value.decode() if isinstance(value, bytes) else str(value)


class RedisLockBackend(LockBackend):
    """Lock leases kept in Redis (``redis://`` or ``rediss://`` URL)."""

    def __init__(
        self,
        url: str,
        *,
        socket_timeout: float = DEFAULT_SOCKET_TIMEOUT,
        retries: int = DEFAULT_RETRIES,
    ) -> None:
        self.url = url
        self._shown_url = redact_url(url)
        self._client = redis.Redis.from_url(
            url,
            socket_timeout=socket_timeout,
            socket_connect_timeout=socket_timeout,
            retry=Retry(ExponentialBackoff(cap=0.5, base=0.05), retries),
        )
        self._acquire = self._client.register_script(_ACQUIRE)
        self._extend = self._client.register_script(_EXTEND)
        self._release = self._client.register_script(_RELEASE)

    @property
    def where(self) -> str:
        return f"Redis lock store at {self._shown_url}"

    def _call(self, what: str, call: Callable[[], _T]) -> _T:
        """Run one Redis round trip, turning transport failures into LockBackendError."""
        try:
            return call()
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            raise LockBackendError(f"{self.where} is unreachable during {what}: {exc}") from exc
        except redis.RedisError as exc:
            raise LockBackendError(f"{self.where} failed during {what}: {exc}") from exc

    def acquire(self, name: str, owner: str, ttl: float) -> Lease | None:
        px = _ttl_ms(ttl)
        fence = self._call(
            f"acquire of lock {name!r}",
            lambda: self._acquire(keys=[lock_key(name), fence_key(name)], args=[owner, px]),
        )
        if fence is None:
            return None
        return Lease(name=name, owner=owner, ttl=ttl, fence=int(fence))

    def extend(self, lease: Lease, ttl: float) -> bool:
        px = _ttl_ms(ttl)
        done = self._call(
            f"extend of lock {lease.name!r}",
            lambda: self._extend(keys=[lock_key(lease.name)], args=[lease.owner, px]),
        )
        return bool(done)

    def release(self, lease: Lease) -> bool:
        done = self._call(
            f"release of lock {lease.name!r}",
            lambda: self._release(keys=[lock_key(lease.name)], args=[lease.owner]),
        )
        return bool(done)

    def info(self, name: str) -> LockInfo:
        def read() -> list[object]:
            # MULTI/EXEC so owner, ttl and fence describe the same moment.
            pipe = self._client.pipeline(transaction=True)
            pipe.get(lock_key(name))
            pipe.pttl(lock_key(name))
            pipe.get(fence_key(name))
            return list(pipe.execute())

        raw_owner, pttl, raw_fence = self._call(f"info of lock {name!r}", read)
        owner = _text(raw_owner)
        fence_text = _text(raw_fence)
        remaining = None
        if owner is not None and isinstance(pttl, int) and pttl >= 0:
            remaining = pttl / 1000
        return LockInfo(
            name=name,
            owner=owner,
            remaining=remaining,
            fence=int(fence_text) if fence_text is not None else 0,
        )

    def close(self) -> None:
        self._client.close()
