"""The CLI's output: a reader that goes away (``| head``) is not an outage; limits are checked.

Real processes: ``python -m chromasync`` (the console script's entry point) on moto,
its stdout a real pipe that the test closes after the first line.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

from chromasync.core.config import Settings
from chromasync.core.exits import EXIT_OUTPUT_CLOSED
from chromasync.provision import ensure_queues
from tasks.deadletter import DeadLetter, DeadLetterQueues

#: Each test runs ``python -m chromasync``: a process, outside ``make test-fast``.
pytestmark = pytest.mark.slow

#: Bytes a Linux pipe holds before its writer blocks (the default capacity).
PIPE_CAPACITY = 64 * 1024


def chromasync(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "chromasync", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )


def big_letter(collection: str) -> DeadLetter:
    """A dead letter whose ``dlq show`` output is several times what a pipe holds."""
    changes = [
        {
            "entity_type": "RECEIPT_WORD",
            "event_name": "MODIFY",
            "keys": {"image_id": f"img-{n}", "receipt_id": 1, "line_id": 2, "word_id": n},
            "sequence_number": str(n),
            "event_id": f"e-{n}",
        }
        for n in range(900)
    ]
    payload = {"schema_version": 1, "collection": collection, "changes": changes}
    now = time.time()
    return DeadLetter(collection, payload, "InvalidChange", "injected", "", 1, now, now)


def test_dlq_show_into_a_pipe_closed_early_ends_quietly(producer_env: dict[str, str]) -> None:
    settings = Settings.from_env()
    ensure_queues(settings)
    queues = DeadLetterQueues(settings)
    letter = big_letter(settings.words_collection)
    assert len(json.dumps(letter.payload, indent=2)) > 3 * PIPE_CAPACITY
    queues.send(letter)
    (received,) = queues.peek(settings.words_collection, 10)

    child = subprocess.Popen(
        [sys.executable, "-m", "chromasync", "dlq", "show", received.message_id[:8]],
        env=producer_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert child.stdout is not None and child.stderr is not None
    first = child.stdout.readline()  # what `| head -1` reads
    child.stdout.close()  # ... before the rest: the child's next write meets a closed pipe
    errors = child.stderr.read()
    status = child.wait(60)
    assert first.startswith(b"message id      " + received.message_id.encode())
    assert status == EXIT_OUTPUT_CLOSED == 141
    assert errors == b""  # no "service unreachable", no traceback, no "Exception ignored"
    # The letter is still there, untouched.
    assert [r.message_id for r in queues.peek(settings.words_collection, 10)] == [
        received.message_id
    ]

    # Read to the end, the same command says 0 and prints the whole letter.
    whole = chromasync("dlq", "show", received.message_id[:8], env=producer_env)
    assert whole.returncode == 0, whole.stderr
    assert len(whole.stdout) > 3 * PIPE_CAPACITY


@pytest.mark.parametrize("limit", ["0", "-1", "ten"])
def test_dlq_limit_below_one_is_a_usage_error(producer_env: dict[str, str], limit: str) -> None:
    for action in (["list"], ["show", "abc"], ["redrive"], ["purge", "--yes"]):
        done = chromasync("dlq", *action, "--limit", limit, env=producer_env)
        assert done.returncode == 2, (action, done.stdout, done.stderr)
        assert done.stdout == ""
        assert "--limit: " in done.stderr
        assert ("must be at least 1" if limit != "ten" else "is not a whole number") in done.stderr
