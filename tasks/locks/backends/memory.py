"""Lock leases in this process's memory (``memory://NAME``), for tests and the demo's
single process.

Why this shape:

* The same contract as the Redis and DynamoDB backends (owner-checked extend and
  release, a fence bumped on every acquisition, an expired lease is lost even if
  nobody took it), so a test of the worker's locking runs here without a service.
* Every backend made from the same URL in one process shares one
  :class:`MemoryLockStore`, as every client of one Redis shares its keys; a fresh
  ``NAME`` is an empty store, so tests use a name of their own instead of a reset.
* Leases run on ``time.monotonic()``: one process has one clock.
* It serialises only the threads of *one process*. Worker processes (Celery's
  prefork pool, several workers, ``chromasync run``) would each hold their own
  store and all write at once, so the worker's preflight refuses this backend
  (:mod:`tasks.preflight`).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

from tasks.locks.backend import Lease, LockBackend, LockInfo


@dataclass
class _Held:
    owner: str
    #: ``time.monotonic()`` at which the lease runs out.
    expires_at: float


@dataclass
class MemoryLockStore:
    """The locks and fences of one ``memory://NAME``, guarded by one mutex."""

    name: str
    mutex: threading.Lock = field(default_factory=threading.Lock)
    held: dict[str, _Held] = field(default_factory=dict)
    #: Never reset while the process lives, like the Redis fence key and the DynamoDB item.
    fences: dict[str, int] = field(default_factory=dict)

    def current(self, lock: str, now: float) -> _Held | None:
        """The live lease of ``lock``; an expired one is dropped (caller holds the mutex)."""
        held = self.held.get(lock)
        if held is not None and held.expires_at <= now:
            del self.held[lock]
            return None
        return held


#: The stores of this process by name; entries live as long as the process.
_STORES: dict[str, MemoryLockStore] = {}
_STORES_MUTEX = threading.Lock()


def memory_store(name: str) -> MemoryLockStore:
    """The process's store called ``name``, made empty on first use."""
    with _STORES_MUTEX:
        store = _STORES.get(name)
        if store is None:
            store = _STORES[name] = MemoryLockStore(name)
        return store


def _check_ttl(ttl: float) -> None:
    if ttl <= 0:
        raise ValueError(f"lock ttl must be positive, got {ttl}")


class MemoryLockBackend(LockBackend):
    """Lock leases kept in this process (``memory://NAME`` URL); never raises LockBackendError."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._store = memory_store(name)

    @property
    def where(self) -> str:
        return f"in-process lock store memory://{self.name} (this process only)"

    def acquire(self, name: str, owner: str, ttl: float) -> Lease | None:
        _check_ttl(ttl)
        store = self._store
        with store.mutex:
            now = time.monotonic()
            if store.current(name, now) is not None:
                return None
            fence = store.fences.get(name, 0) + 1
            store.fences[name] = fence
            store.held[name] = _Held(owner, now + ttl)
        return Lease(name=name, owner=owner, ttl=ttl, fence=fence)

    def extend(self, lease: Lease, ttl: float) -> bool:
        _check_ttl(ttl)
        store = self._store
        with store.mutex:
            now = time.monotonic()
            held = store.current(lease.name, now)
            if held is None or held.owner != lease.owner:
                return False
            held.expires_at = now + ttl
            return True

    def release(self, lease: Lease) -> bool:
        store = self._store
        with store.mutex:
            held = store.current(lease.name, time.monotonic())
            if held is None or held.owner != lease.owner:
                return False
            del store.held[lease.name]
            return True

    def info(self, name: str) -> LockInfo:
        store = self._store
        with store.mutex:
            now = time.monotonic()
            held = store.current(name, now)
            fence = store.fences.get(name, 0)
            if held is None:
                return LockInfo(name=name, owner=None, remaining=None, fence=fence)
            return LockInfo(
                name=name, owner=held.owner, remaining=held.expires_at - now, fence=fence
            )
