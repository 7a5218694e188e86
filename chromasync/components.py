"""What ``chromasync run`` starts and supervises: a celery worker process, the poller thread.

Each component can be started again after it stopped (a new process, a new thread
with a new :class:`~producers.poller.StreamPoller`), says whether it runs and is
ready, and why it stopped, quoting its log; :mod:`chromasync.supervisor` decides
when to restart it.
"""

from __future__ import annotations

import logging
import threading
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from chromasync.workers import WorkerProcess
from producers.poller import StreamPoller

log = logging.getLogger(__name__)

#: Log lines of a component quoted when it stops.
TAIL_LINES = 20


class Component(Protocol):
    """Something ``run`` starts, watches and restarts."""

    @property
    def name(self) -> str: ...

    def start(self) -> None: ...

    def alive(self) -> bool: ...

    def ready(self) -> bool: ...

    def failure(self) -> str:
        """Why it stopped, with the last lines of its log."""
        ...

    def request_stop(self) -> None: ...

    def stop(self, timeout: float) -> None: ...


@dataclass
class WorkerComponent:
    """One celery worker process for a collection; ``launch`` starts a new one each time.

    ``launch`` (see :meth:`chromasync.assembly.Assembly.worker`) appends every start
    to the same log file.
    """

    collection: str
    launch: Callable[[], WorkerProcess]
    process: WorkerProcess | None = None

    @property
    def name(self) -> str:
        return f"worker:{self.collection}"

    def start(self) -> None:
        self.process = self.launch()
        log.info(
            "started %s (pid %d), logging to %s", self.name, self.process.pid, self.process.log_path
        )

    def alive(self) -> bool:
        return self.process is not None and self.process.alive()

    def ready(self) -> bool:
        process = self.process
        return process is not None and process.alive() and " ready." in process.log_since_start()

    def failure(self) -> str:
        if self.process is None:
            return "never started"
        # This start's lines only: earlier starts appended to the same file.
        tail = self.process.log_since_start().rstrip().splitlines()[-TAIL_LINES:]
        return (
            f"exited with status {self.process.process.returncode}; last lines of "
            f"{self.process.log_path}:\n" + "\n".join(tail)
        )

    def request_stop(self) -> None:
        if self.process is not None:
            self.process.request_stop()

    def stop(self, timeout: float) -> None:
        if self.process is not None:
            self.process.stop(timeout)


@dataclass
class PollerComponent:
    """The stream poller, in a thread of ``run``; a new :class:`StreamPoller` per start."""

    build: Callable[[], StreamPoller]
    poller: StreamPoller | None = None
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    _error: str | None = None

    @property
    def name(self) -> str:
        return "poller"

    def start(self) -> None:
        """Build the poller (it describes the table: raises if it is missing) and run it."""
        self._error = None
        self._stop = threading.Event()
        self.poller = self.build()
        self._thread = threading.Thread(
            target=self._run, args=(self.poller, self._stop), name="stream-poller", daemon=True
        )
        self._thread.start()

    def _run(self, poller: StreamPoller, stop: threading.Event) -> None:
        try:
            poller.run(stop)
        except BaseException as exc:  # noqa: BLE001 - the supervisor reports and restarts
            log.error("the stream poller stopped: %s: %s", type(exc).__name__, exc)
            self._error = "".join(traceback.format_exception(exc))

    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def ready(self) -> bool:
        return self.alive()

    def failure(self) -> str:
        if self._error is None:
            return "stopped"
        lines = self._error.rstrip().splitlines()[-TAIL_LINES:]
        return "raised:\n" + "\n".join(lines)

    def request_stop(self) -> None:
        self._stop.set()

    def stop(self, timeout: float) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
