"""``chromasync status`` on a real system: fresh, after a drain, with a dead letter and a held lock,
and with its lock store unreachable."""

from __future__ import annotations

import time

from chromasync.local import free_port
from chromasync.seed import demo_receipts
from chromasync.shard_metrics import ShardMetrics
from tasks.deadletter import DeadLetter, DeadLetterQueues
from tasks.locks import lock_backend_from_url
from tasks.progress.factory import progress_store_from_url
from tests.stack import Stack


def row(output: str, *words: str) -> str:
    """The one line of ``output`` holding every word (fails when none or several do)."""
    found = [line for line in output.splitlines() if all(w in line.split() for w in words)]
    assert len(found) == 1, f"{words} in {len(found)} lines of:\n{output}"
    return found[0]


def test_status_shows_queues_dead_letters_locks_and_last_applied_batches(stack: Stack) -> None:
    lines, words = stack.lines, stack.words
    stack.seed(demo_receipts(1, lines=2, words_per_line=2))

    # Nothing applied yet: every part says so, and status still succeeds.
    fresh = stack.cli("status")
    assert fresh.returncode == 0, fresh.stdout + fresh.stderr
    for collection in (lines, words):
        assert row(fresh.stdout, stack.settings.sqs_queue_name(collection), "tasks")
        assert "nothing applied yet" in row(fresh.stdout, collection, "nothing")
        assert "free" in row(fresh.stdout, collection, "free")
    assert "no shard read yet" in fresh.stdout

    # Drain the seeded inserts through real workers, then inject a dead letter and hold a lock.
    stack.start_workers()
    poller = stack.poller()
    poller.on_shard = ShardMetrics.from_env(stack.env)
    stack.drain(poller)
    now = time.time()
    DeadLetterQueues(stack.settings).send(
        DeadLetter(words, {"schema_version": 1}, "InvalidChange", "injected", "", 1, now, now)
    )
    backend = lock_backend_from_url(stack.env["CHROMASYNC_LOCK_URL"])
    held = backend.acquire(f"collection:{lines}", "status-test-holder", 60)
    assert held is not None
    try:
        shown = stack.cli("status")
    finally:
        backend.release(held)
        backend.close()
    out = shown.stdout
    assert shown.returncode == 0, out + shown.stderr
    assert "Traceback" not in out + shown.stderr

    # Both queues empty, the injected dead letter counted in the words DLQ only.
    for collection in (lines, words):
        assert row(out, stack.settings.sqs_queue_name(collection)).split()[2:5] == ["0", "0", "0"]
    assert row(out, stack.settings.dlq_name(words)).split()[3:5] == ["1", "0"]
    assert row(out, stack.settings.dlq_name(lines)).split()[3:5] == ["0", "0"]
    assert "chromasync dlq list" in row(out, stack.settings.dlq_name(words))

    # The lock held by the test, with its lease; the other lock is free.
    holder = row(out, lines, "status-test-holder").split()
    assert holder[2].endswith("s") and 50 < float(holder[2][:-1]) <= 60
    assert int(holder[3]) == held.fence
    assert row(out, words, "free")

    # The last applied batch of each collection, as the workers recorded it.
    store = progress_store_from_url(stack.env["CHROMASYNC_LOCK_URL"])
    for collection in (lines, words):
        applied = store.last(collection)
        assert applied is not None and applied.changes > 0
        cells = row(out, collection, applied.batch_id[:12]).split()
        assert str(applied.fence) in cells and str(applied.changes) in cells
        assert applied.highest_sequence in cells
        assert "ago)" in cells and cells[-1].endswith("s")  # applied at ..., lag
    store.close()
    assert row(out, "received", "applied")  # counters header
    assert "caught up" in out  # the stream poller's shard


def test_status_names_an_unreachable_lock_store_without_a_traceback(stack: Stack) -> None:
    port = free_port()
    stack.env["CHROMASYNC_LOCK_URL"] = f"redis://127.0.0.1:{port}/0"
    done = stack.cli("status")
    assert done.returncode == 3, done.stdout + done.stderr
    assert f"UNREACHABLE  Redis lock store at redis://127.0.0.1:{port}/0" in done.stdout
    assert "Traceback" not in done.stdout + done.stderr
    # The parts that answered are still shown.
    assert stack.settings.sqs_queue_name(stack.words) in done.stdout
