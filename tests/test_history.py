"""When a retried batch stops being retried (pure functions of tasks.history).

Transient failures are counted; waits for a missing embedding are timed from
the first wait. Neither may use up the other's allowance.
"""

from __future__ import annotations

from dataclasses import asdict

from tasks.errors import EmbeddingMissing
from tasks.history import FailureHistory
from tasks.lease import LockBusy

MAX_RETRIES = 8
TIMEOUT = 600.0


def _fail(history: FailureHistory, exc: BaseException, at: float) -> FailureHistory:
    assert not history.exhausted(exc, at, MAX_RETRIES, TIMEOUT)
    return history.failed(exc, at)


def test_a_batch_that_waited_long_still_gets_its_transient_retries() -> None:
    history = FailureHistory()
    for minute in range(12):  # twelve waits over five and a half minutes
        history = _fail(history, EmbeddingMissing("not merged yet"), 1000.0 + 30 * minute)
    assert history.attempts == 12 and history.transient_attempts == 0
    busy = LockBusy("the lock is held")
    for attempt in range(MAX_RETRIES):
        history = _fail(history, busy, 1400.0 + attempt)
    assert history.exhausted(busy, 1500.0, MAX_RETRIES, TIMEOUT)
    assert history.attempts == 12 + MAX_RETRIES and history.first_failure_at == 1000.0


def test_waiting_is_timed_from_the_first_wait_not_the_first_failure() -> None:
    history = FailureHistory()
    for attempt in range(MAX_RETRIES - 1):  # transient failures first, for 500 s
        history = _fail(history, LockBusy("held"), 1000.0 + 70 * attempt)
    missing = EmbeddingMissing("not merged yet")
    history = _fail(history, missing, 1500.0)
    assert history.waiting_since == 1500.0
    assert not history.exhausted(missing, 1500.0 + TIMEOUT - 1, MAX_RETRIES, TIMEOUT)
    assert history.exhausted(missing, 1500.0 + TIMEOUT, MAX_RETRIES, TIMEOUT)


def test_a_history_travels_as_a_dict_and_an_unreadable_one_starts_afresh() -> None:
    history = FailureHistory().failed(LockBusy("held"), 5.0).failed(EmbeddingMissing("x"), 9.0)
    assert FailureHistory.from_dict(asdict(history)) == history
    # An older worker's history: every attempt counted as transient.
    assert FailureHistory.from_dict({"attempts": 3}).transient_attempts == 3
    for raw in (None, "x", {"attempts": "many"}, {"attempts": 1, "waiting_since": "soon"}):
        assert FailureHistory.from_dict(raw) == FailureHistory()
