"""Writes that must never fail or slow down the work they describe: metrics and progress.

After a failed write the caller skips further writes for :data:`RETRY_AFTER`
seconds (a dead Redis then costs nothing per task), the first failure is
logged as a warning and the next success as info, so an outage shows up in
the log twice, not once per task.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

log = logging.getLogger(__name__)

#: Seconds without any attempt after a failed write.
RETRY_AFTER = 30.0


class BestEffort:
    """The pause-and-warn-once state of one kind of write (``what``: "metrics", ...)."""

    def __init__(self, what: str, retry_after: float = RETRY_AFTER) -> None:
        self.what = what
        self.retry_after = retry_after
        self._lock = threading.Lock()
        self._paused_until = 0.0
        self._warned = False

    def write(self, where: Callable[[], str], call: Callable[[], object]) -> bool:
        """Run ``call`` unless paused; False when skipped or failed (never raises).

        ``where`` names the store in the log (its URL redacted); it is only
        called to log, so it may name a store that ``call`` builds.
        """
        if time.monotonic() < self._paused_until:
            return False
        try:
            call()
        except Exception as exc:  # noqa: BLE001 - best effort: never fail the caller
            with self._lock:
                self._paused_until = time.monotonic() + self.retry_after
                first, self._warned = not self._warned, True
            if first:
                log.warning(
                    "%s not recorded: %s failed: %s; retrying every %.0fs, work goes on",
                    self.what,
                    where(),
                    exc,
                    self.retry_after,
                )
            return False
        if self._warned:
            with self._lock:
                recovered, self._warned = self._warned, False
            if recovered:
                log.info("%s recorded again in %s", self.what, where())
        return True
