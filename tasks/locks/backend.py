"""The lock interface every backend implements (one module per backend in ``backends/``).

A lock is a *lease*: it is held by an owner token until ``expires_at``
unless extended. Every acquisition bumps a fencing number kept with the lock,
so writes made under a lease can be told apart from writes made under an
older one. A backend never lets a call that does not present the current
owner token extend or release the lock.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass


class LockBackendError(RuntimeError):
    """The lock store could not be reached or answered badly (transient)."""


@dataclass(frozen=True)
class Lease:
    """A granted lock: who holds it, until when (store clock), with which fence."""

    name: str
    owner: str
    #: Seconds of the lease granted at the moment of acquisition/extension.
    ttl: float
    #: Monotonically increasing number bumped on every acquisition.
    fence: int


@dataclass(frozen=True)
class LockInfo:
    """What the store says about a lock now (for ``chromasync status``)."""

    name: str
    owner: str | None
    #: Seconds left on the lease; None when nobody holds it.
    remaining: float | None
    fence: int


class LockBackend(abc.ABC):
    @abc.abstractmethod
    def acquire(self, name: str, owner: str, ttl: float) -> Lease | None:
        """Take the lock if free or expired; None if somebody else holds it."""

    @abc.abstractmethod
    def extend(self, lease: Lease, ttl: float) -> bool:
        """Push the expiry to now+ttl only while ``lease.owner`` still holds it."""

    @abc.abstractmethod
    def release(self, lease: Lease) -> bool:
        """Free the lock only if ``lease.owner`` still holds it; True if it did."""

    @abc.abstractmethod
    def info(self, name: str) -> LockInfo:
        """Current holder and remaining lease of a lock."""

    @property
    @abc.abstractmethod
    def where(self) -> str:
        """What and where the lock store is, for messages (never credentials)."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release client resources."""
