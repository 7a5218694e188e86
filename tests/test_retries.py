"""Retries never outlive a message's visibility: one change, one outcome, however short the timeout.

A retry used to be a Celery countdown: the worker received the new message at
once and held it until due; past the queue's visibility timeout SQS handed it
out again, and one change became several identical dead letters. Now SQS
holds it (``DelaySeconds``), and settings that would make a worker hold a
message past its visibility are refused at start.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from chromasync.core.config import ConfigError
from chromasync.core.keys import word_embedding_id
from chromasync.local import wait_for
from chromasync.provision import queue_depth
from chromasync.seed import demo_receipts
from tasks.config import WorkerSettings
from tests.stack import Stack
from tests.test_worker_apply import batch, make_change


@pytest.mark.parametrize(
    ("settings", "named"),
    [
        (
            {"CHROMASYNC_VISIBILITY_TIMEOUT": "5", "CHROMASYNC_LOCK_WAIT": "5"},
            ["CHROMASYNC_LOCK_WAIT=5.0", "CHROMASYNC_VISIBILITY_TIMEOUT=5"],
        ),
        (
            {"CHROMASYNC_RETRY_BACKOFF_MAX": "901"},
            ["CHROMASYNC_RETRY_BACKOFF_MAX=901.0", "900 s"],
        ),
        (
            {
                "CHROMASYNC_FIFO": "true",
                "CHROMASYNC_VISIBILITY_TIMEOUT": "60",
                "CHROMASYNC_LOCK_WAIT": "10",
                "CHROMASYNC_RETRY_BACKOFF_MAX": "50",
            },
            ["CHROMASYNC_FIFO", "CHROMASYNC_LOCK_WAIT=10.0", "CHROMASYNC_RETRY_BACKOFF_MAX=50.0"],
        ),
        (
            {"CHROMASYNC_RETRY_BACKOFF_BASE": "5", "CHROMASYNC_RETRY_BACKOFF_MAX": "2"},
            ["CHROMASYNC_RETRY_BACKOFF_BASE=5.0", "CHROMASYNC_RETRY_BACKOFF_MAX=2.0"],
        ),
    ],
)
def test_contradicting_time_bounds_are_refused_naming_them(
    settings: dict[str, str], named: list[str]
) -> None:
    with pytest.raises(ConfigError) as refused:
        WorkerSettings.from_env(settings)
    for part in named:
        assert part in str(refused.value)


def test_the_defaults_and_a_short_consistent_timeout_are_accepted() -> None:
    WorkerSettings.from_env({})
    WorkerSettings.from_env({"CHROMASYNC_VISIBILITY_TIMEOUT": "2", "CHROMASYNC_LOCK_WAIT": "1"})
    WorkerSettings.from_env(
        {"CHROMASYNC_FIFO": "true", "CHROMASYNC_VISIBILITY_TIMEOUT": "120"}  # 10 + 60 < 120
    )


def _counts(stack: Stack, queue: str) -> tuple[int, int, int]:
    depth = queue_depth(stack.sqs, queue)
    return depth.visible, depth.in_flight, depth.delayed


def test_a_change_waiting_past_the_visibility_timeout_ends_as_one_dead_letter(
    stack_env: dict[str, str], tmp_path: Path
) -> None:
    stack_env.update(
        {
            # What an operator reported: 7 identical dead letters from one change. The
            # backoff keeps its defaults (1 s doubling, capped at 60 s).
            "CHROMASYNC_VISIBILITY_TIMEOUT": "2",
            "CHROMASYNC_MISSING_EMBEDDING_TIMEOUT": "4",
            "CHROMASYNC_LOCK_WAIT": "1",
        }
    )
    stack = Stack(stack_env, tmp_path)
    try:
        (spec,) = demo_receipts(1, lines=1, words_per_line=1)
        stack.seed([spec])
        # The word's embedding is missing and never arrives: the change waits, retrying,
        # until CHROMASYNC_MISSING_EMBEDDING_TIMEOUT, then is dead-lettered once.
        stack.collection(stack.words).delete(
            ids=[word_embedding_id(spec.image_id, spec.receipt_id, 1, 1)]
        )
        stack.start_worker(stack.words)
        stack.send(
            batch(stack.words, make_change("RECEIPT_WORD", "MODIFY", spec, 1, 1)).to_payload(),
            stack.words,
        )
        queue = stack.settings.sqs_queue_name(stack.words)
        dlq = stack.settings.dlq_name(stack.words)
        wait_for(
            lambda: sum(_counts(stack, dlq)) >= 1 and _counts(stack, queue) == (0, 0, 0),
            60,
            interval=0.2,
            what="the change dead-lettered and nothing left on its queue",
        )
        # Nothing was handed out twice: no second letter appears while the worker runs on
        # (a held copy would come back within a few visibility timeouts).
        worker = stack.workers[0]
        seen = worker.log_tail(2000).count("dead-lettered")
        assert seen == 1, worker.log_tail(200)
        assert sum(_counts(stack, dlq)) == 1
        assert "EmbeddingMissing" in stack.cli("dlq", "list").stdout
    finally:
        stack.stop()
