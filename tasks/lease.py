"""Holding a collection's lock while a batch is applied: wait, heartbeat, check, release.

The lease is only trusted for as long as the store granted it, measured on
this process's monotonic clock from the moment the request was *sent*. The
heartbeat renews it every third of the TTL; :meth:`HeldLease.check` is called
before every Chroma write and refuses to write when less than the safety
margin remains or when a renewal was refused. A worker that was paused past
its lease (SIGSTOP, a long GC) therefore finds its lease expired on its own
clock when it resumes and stops before writing.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from types import TracebackType
from typing import TYPE_CHECKING

from tasks.locks.backend import Lease, LockBackend, LockBackendError

if TYPE_CHECKING:
    from tasks.config import WorkerSettings

log = logging.getLogger(__name__)

#: Pause between attempts to take a busy lock, in seconds.
ACQUIRE_POLL = 0.1


class LockBusy(RuntimeError):
    """Another worker holds the collection's lock (transient: retry later)."""


class LeaseLost(RuntimeError):
    """The lease ran out or was taken over; nothing more may be written."""


def lock_name(collection: str) -> str:
    return f"collection:{collection}"


class HeldLease:
    def __init__(
        self,
        backend: LockBackend,
        collection: str,
        ttl: float,
        safety_margin: float,
        wait: float,
        owner: str | None = None,
    ) -> None:
        self.backend = backend
        self.name = lock_name(collection)
        self.ttl = ttl
        self.safety_margin = safety_margin
        self.wait = wait
        # Names the worker in `chromasync status`; the uuid makes each lease unique.
        self.owner = owner or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:12]}"
        self.lease: Lease | None = None
        self._valid_until = 0.0
        self._lost = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.waited = 0.0
        self.acquired_at = 0.0

    @property
    def fence(self) -> int:
        assert self.lease is not None
        return self.lease.fence

    def remaining(self) -> float:
        return self._valid_until - time.monotonic()

    def check(self) -> None:
        """Raise :class:`LeaseLost` unless the lease surely holds past the margin."""
        if self._lost.is_set():
            raise LeaseLost(f"lease on {self.name} was lost (a renewal was refused)")
        remaining = self.remaining()
        if remaining < self.safety_margin:
            raise LeaseLost(
                f"lease on {self.name} has {remaining:.2f}s left, below the safety margin "
                f"of {self.safety_margin}s; stopping before the next write"
            )

    def _acquire(self) -> None:
        started = time.monotonic()
        deadline = started + self.wait
        while True:
            sent = time.monotonic()
            lease = self.backend.acquire(self.name, self.owner, self.ttl)
            if lease is not None:
                self.lease = lease
                self._valid_until = sent + self.ttl
                self.acquired_at = time.monotonic()
                self.waited = self.acquired_at - started
                return
            if time.monotonic() >= deadline:
                info = self.backend.info(self.name)
                raise LockBusy(
                    f"lock {self.name} is held by {info.owner} "
                    f"({info.remaining or 0:.1f}s left); waited {self.wait}s"
                )
            time.sleep(ACQUIRE_POLL)

    def renew(self) -> bool:
        """One heartbeat: extend the lease if we still own it.

        Returns False once the store refused (the lease is lost for good); a
        store that cannot be reached is only logged, and the lease keeps
        running out on our clock, so :meth:`check` stops the writes in time.
        """
        assert self.lease is not None
        if self._lost.is_set():
            return False
        sent = time.monotonic()
        try:
            if self.backend.extend(self.lease, self.ttl):
                self._valid_until = sent + self.ttl
                return True
        except LockBackendError as exc:
            log.warning("heartbeat for %s failed: %s", self.name, exc)
            return True
        log.warning("lease on %s was taken over; stopping writes", self.name)
        self._lost.set()
        return False

    def _heartbeat(self) -> None:
        interval = self.ttl / 3
        while not self._stop.wait(interval):
            if not self.renew():
                return

    def __enter__(self) -> HeldLease:
        self._acquire()
        self._thread = threading.Thread(
            target=self._heartbeat, name=f"heartbeat-{self.name}", daemon=True
        )
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        if self.lease is not None:
            try:
                self.backend.release(self.lease)
            except LockBackendError as error:
                log.warning("release of %s failed (it will expire): %s", self.name, error)


def lease_for(backend: LockBackend, collection: str, settings: WorkerSettings) -> HeldLease:
    """The collection's lease with the worker's lock settings (TTL, margin, wait)."""
    return HeldLease(
        backend, collection, settings.lock_ttl, settings.lock_safety_margin, settings.lock_wait
    )
