"""Best-effort writes (metrics, progress): never raise, pause after a failure, warn once."""

from __future__ import annotations

import logging

import pytest

from tasks.besteffort import BestEffort
from tasks.metrics.catalogue import RESTARTS
from tasks.metrics.store import MetricsStore
from tasks.metrics.writes import Writes
from tests.servers import free_port


def warnings_of(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]


def test_a_failure_pauses_further_writes(caplog: pytest.LogCaptureFixture) -> None:
    calls: list[str] = []

    def fail() -> None:
        calls.append("tried")
        raise ConnectionError("refused")

    writes = BestEffort("metrics", retry_after=60)
    assert writes.write(lambda: "the store", fail) is False
    assert writes.write(lambda: "the store", fail) is False
    assert calls == ["tried"]
    assert warnings_of(caplog) == [
        "metrics not recorded: the store failed: refused; retrying every 60s, work goes on"
    ]


def test_an_outage_is_logged_once_and_its_end_once(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="tasks.besteffort")
    outcomes = iter([ConnectionError("down"), ConnectionError("still down"), None, None])

    def call() -> None:
        outcome = next(outcomes)
        if outcome is not None:
            raise outcome

    writes = BestEffort("progress", retry_after=0)
    results = [writes.write(lambda: "the store", call) for _ in range(4)]
    assert results == [False, False, True, True]
    messages = [r.getMessage() for r in caplog.records]
    assert messages == [
        "progress not recorded: the store failed: down; retrying every 0s, work goes on",
        "progress recorded again in the store",
    ]


def test_metrics_to_a_dead_redis_never_raise_and_warn_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    url = f"redis://:hunter2@127.0.0.1:{free_port()}/0"
    store = MetricsStore(url, "chromasync:metrics:test:")
    writes = Writes()
    writes.inc(RESTARTS, ("poller",))
    try:
        assert store.send(writes) is False
        assert store.send(writes) is False
    finally:
        store.close()
    (warning,) = warnings_of(caplog)
    assert f"Redis at redis://:***@127.0.0.1:{url.rsplit(':', 1)[1]}" in warning
    assert "CHROMASYNC_METRICS_URL" in warning and "hunter2" not in warning
