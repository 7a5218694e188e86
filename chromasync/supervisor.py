"""Keeping ``chromasync run``'s components up: restart what stopped, give up on what keeps failing.

A component is one celery worker process (``worker:COLLECTION``) or the stream poller
thread (``poller``). When one stops, it is started again after a backoff that doubles
with each restart in the last :data:`RESTART_WINDOW` seconds; each restart is logged and
counted (``chromasync_restarts_total{component=...}``, shown by ``chromasync status``).
A component that would need more than :data:`MAX_RESTARTS` restarts within the window is
not going to recover by itself (a setting only it reads, a disk that is gone, a service
that stays away): the supervisor raises :class:`GaveUp`, naming it and the end of its
log, and ``chromasync run`` stops everything and exits 1.

Nothing is lost by a restart: a dead worker's unacknowledged task comes back after the
visibility timeout, and a new poller resumes after the last checkpoint of each shard.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from chromasync.components import Component
from chromasync.processes import stop_all

log = logging.getLogger(__name__)

#: Seconds before the first restart of a component that stopped; each further restart
#: within :data:`RESTART_WINDOW` waits twice as long as the one before.
RESTART_BACKOFF_BASE = 1.0
#: Longest wait before a restart, seconds.
RESTART_BACKOFF_MAX = 30.0
#: Restarts of one component within :data:`RESTART_WINDOW` after which a further stop
#: makes ``run`` give up (with the defaults: six stops in five minutes).
MAX_RESTARTS = 5
#: Seconds over which restarts are counted; a component that ran this long without
#: stopping starts again from the shortest backoff.
RESTART_WINDOW = 300.0


@dataclass(frozen=True)
class RestartPolicy:
    """How soon a stopped component is restarted, and when to give up on it."""

    max_restarts: int = MAX_RESTARTS
    window: float = RESTART_WINDOW
    backoff_base: float = RESTART_BACKOFF_BASE
    backoff_max: float = RESTART_BACKOFF_MAX

    def delay(self, recent_restarts: int) -> float:
        """Seconds before the next restart, after ``recent_restarts`` within the window."""
        return float(min(self.backoff_max, self.backoff_base * 2 ** min(recent_restarts, 30)))


class GaveUp(RuntimeError):
    """A component kept stopping: ``run`` stops everything and says which and why."""

    def __init__(self, component: str, stops: int, window: float, failure: str) -> None:
        self.component = component
        super().__init__(
            f"{component} stopped {stops} times within {window:g}s; giving up and stopping "
            f"everything. It {failure}"
        )


@dataclass
class _Watched:
    component: Component
    #: Monotonic times of its restarts within the policy's window.
    restarts: deque[float] = field(default_factory=deque)
    #: When a pending restart is due (monotonic); None while it runs.
    restart_at: float | None = None
    #: Why its last start failed, if it did (it is then treated as stopped).
    start_error: str | None = None


class Supervisor:
    """Watches components; :meth:`check`, called every second or so, restarts or gives up."""

    def __init__(
        self,
        components: Sequence[Component],
        policy: RestartPolicy | None = None,
        on_restart: Callable[[str], None] | None = None,
    ) -> None:
        self.policy = policy or RestartPolicy()
        self.on_restart = on_restart
        self._watched = [_Watched(c) for c in components]

    @property
    def components(self) -> list[Component]:
        return [w.component for w in self._watched]

    def restarts(self, name: str) -> int:
        """Restarts of a component within the current window."""
        return next(len(w.restarts) for w in self._watched if w.component.name == name)

    def check(self) -> None:
        """Restart components whose backoff is over; schedule restarts of stopped ones.

        Raises :class:`GaveUp` when one stopped again after
        ``policy.max_restarts`` restarts within ``policy.window`` seconds.
        """
        now = time.monotonic()
        for watched in self._watched:
            if watched.restart_at is not None:
                if now >= watched.restart_at:
                    self._restart(watched, now)
                continue
            if watched.start_error is None and watched.component.alive():
                continue
            self._stopped(watched, now)

    def _stopped(self, watched: _Watched, now: float) -> None:
        name = watched.component.name
        failure = (
            f"could not be started: {watched.start_error}"
            if watched.start_error is not None
            else watched.component.failure()
        )
        while watched.restarts and now - watched.restarts[0] > self.policy.window:
            watched.restarts.popleft()
        recent = len(watched.restarts)
        if recent >= self.policy.max_restarts:
            raise GaveUp(name, recent + 1, self.policy.window, failure)
        delay = self.policy.delay(recent)
        watched.restart_at = now + delay
        log.warning("%s stopped; restarting it in %.1fs. It %s", name, delay, failure)

    def _restart(self, watched: _Watched, now: float) -> None:
        name = watched.component.name
        watched.restart_at = None
        watched.restarts.append(now)
        watched.start_error = None
        log.warning(
            "restarting %s (restart %d within %gs)", name, len(watched.restarts), self.policy.window
        )
        try:
            watched.component.start()
        except Exception as exc:  # noqa: BLE001 - counted as a stop, reported by check()
            watched.start_error = f"{type(exc).__name__}: {exc}"
        if self.on_restart is not None:
            self.on_restart(name)

    def ready(self) -> bool:
        """Every component runs and is ready (a worker has logged that it consumes)."""
        return all(
            w.restart_at is None and w.start_error is None and w.component.ready()
            for w in self._watched
        )

    def stop(self, timeout: float = 20.0) -> None:
        """Stop every component: all asked at once (warm shutdown), then each waited for."""
        stop_all(self.components, timeout)
