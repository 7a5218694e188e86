"""A retried batch's failure history, and when to stop retrying it.

The history travels with the task (a keyword argument of the re-sent task) so
its dead letter can tell the whole story. Two kinds of retry are counted apart:
a *transient* failure (a busy lock, an unreachable service) is retried at most
``CHROMASYNC_MAX_RETRIES`` times; a *wait* for an embedding whose delta has not
been merged yet (:class:`~tasks.errors.EmbeddingMissing`) is bounded by time,
``CHROMASYNC_MISSING_EMBEDDING_TIMEOUT`` from the first wait. One counter for
both dead-lettered a batch that had waited a few minutes at its first transient
error, and counted transient retries against the embedding's time.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from tasks.errors import EmbeddingMissing

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FailureHistory:
    """Travels with a retried task so its dead letter can tell the whole story."""

    #: Failures of every kind so far (what the dead letter reports).
    attempts: int = 0
    first_failure_at: float | None = None
    last_error: str | None = None
    #: Transient failures so far (bounded by ``max_retries``).
    transient_attempts: int = 0
    #: When the batch first waited for a missing embedding (bounded by the timeout).
    waiting_since: float | None = None

    @classmethod
    def from_dict(cls, raw: Any) -> FailureHistory:
        """The history a task was sent with; none (or an unreadable one) starts afresh.

        A history without the separate counters (sent by an older worker) counts
        all its attempts as transient, the stricter reading.
        """
        if not isinstance(raw, dict):
            return cls()
        try:
            attempts = int(raw.get("attempts", 0))
            return cls(
                attempts=attempts,
                first_failure_at=_seconds(raw.get("first_failure_at")),
                last_error=None if raw.get("last_error") is None else str(raw["last_error"]),
                transient_attempts=int(raw.get("transient_attempts", attempts)),
                waiting_since=_seconds(raw.get("waiting_since")),
            )
        except (TypeError, ValueError) as exc:
            log.warning("unreadable failure history %r (%s); starting afresh", raw, exc)
            return cls()

    def failed(self, exc: BaseException, at: float) -> FailureHistory:
        """The history after one more failure, ``exc``, at time ``at``."""
        waiting = isinstance(exc, EmbeddingMissing)
        return FailureHistory(
            attempts=self.attempts + 1,
            first_failure_at=self.first_failure_at or at,
            last_error=f"{type(exc).__name__}: {exc}",
            transient_attempts=self.transient_attempts + (0 if waiting else 1),
            waiting_since=(self.waiting_since or at) if waiting else self.waiting_since,
        )

    def exhausted(
        self, exc: BaseException, at: float, max_retries: int, missing_timeout: float
    ) -> bool:
        """True when failing again with ``exc`` at ``at`` must dead-letter instead of retry."""
        if isinstance(exc, EmbeddingMissing):
            return at - (self.waiting_since or at) >= missing_timeout
        return self.transient_attempts >= max_retries


def _seconds(value: Any) -> float | None:
    return None if value is None else float(value)
