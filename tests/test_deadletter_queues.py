"""Dead-letter queues: made by provisioning only, standard or FIFO, written by the worker.

The worker's role may not create queues (deploy/iam/worker.json), so a
dead-letter queue that was never provisioned is an error naming it, and
nothing is created behind the operator's back.
"""

from __future__ import annotations

import time

import pytest

from chromasync.core.config import Settings
from chromasync.core.resources import MissingResource
from chromasync.provision import ensure_queues
from tasks.deadletter import DeadLetter, DeadLetterQueues


def _letter(collection: str, error: str) -> DeadLetter:
    now = time.time()
    return DeadLetter(collection, {"schema_version": 1}, "InvalidChange", error, "", 1, now, now)


@pytest.fixture(params=[False, True], ids=["standard", "fifo"])
def settings(
    request: pytest.FixtureRequest, producer_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> Settings:
    monkeypatch.setenv("CHROMASYNC_FIFO", "true" if request.param else "false")
    return Settings.from_env()


def test_a_worker_dead_letters_into_the_queues_provisioning_made(settings: Settings) -> None:
    ensure_queues(settings)
    queues = DeadLetterQueues(settings)
    words = settings.words_collection
    queues.send(_letter(words, "first"))
    queues.send(_letter(words, "second"))
    letters = queues.peek(words, 10)
    assert sorted(r.letter.error for r in letters) == ["first", "second"]
    assert queues.peek(settings.lines_collection, 10) == []


def test_a_dead_letter_queue_never_provisioned_is_named_not_created(settings: Settings) -> None:
    queues = DeadLetterQueues(settings)
    lines = settings.lines_collection
    with pytest.raises(MissingResource) as missing:
        queues.send(_letter(lines, "before provisioning"))
    assert f"SQS queue '{settings.dlq_name(lines)}' does not exist" in str(missing.value)
    assert "chromasync provision" in str(missing.value)
    assert queues.client.list_queues().get("QueueUrls", []) == []
    ensure_queues(settings)
    ensure_queues(settings)  # again: same attributes, no QueueAlreadyExists
    queues.send(_letter(lines, "after provisioning"))
    assert [r.letter.error for r in queues.peek(lines, 10)] == ["after provisioning"]
