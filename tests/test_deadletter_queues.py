"""Dead-letter queues take letters whoever created them, standard or FIFO (moto server).

SQS refuses CreateQueue of an existing queue with other attributes, so a
worker that asked for its dead-letter queue with attributes of its own could
not dead-letter anything into a queue provisioning had made.
"""

from __future__ import annotations

import time

import pytest

from chromasync.provision import ensure_queues
from producers.config import Settings
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


def test_a_dead_letter_queue_the_worker_made_first_is_provisioned_as_it_is(
    settings: Settings,
) -> None:
    queues = DeadLetterQueues(settings)
    lines = settings.lines_collection
    queues.send(_letter(lines, "before provisioning"))
    ensure_queues(settings)  # same attributes: no QueueAlreadyExists
    assert [r.letter.error for r in queues.peek(lines, 10)] == ["before provisioning"]
