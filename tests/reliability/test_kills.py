"""Workers killed with SIGKILL mid-batch and paused with SIGSTOP past their lease."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from chromasync.core.contract import Change
from chromasync.local import ChromaServer, wait_for
from chromasync.seed import ReceiptSpec, demo_receipts
from chromasync.workers import WorkerProcess
from tasks.audit import read_audit
from tests.stack import Stack
from tests.test_worker_apply import batch, make_change


@pytest.fixture
def fragile_env(stack_env: dict[str, str], tmp_path: Path) -> dict[str, str]:
    stack_env.update(
        {
            "CHROMASYNC_AUDIT_LOG": str(tmp_path / "audit.jsonl"),
            "CHROMASYNC_WRITE_CHUNK": "5",  # many write calls per batch
            "CHROMASYNC_VISIBILITY_TIMEOUT": "6",  # a dead worker's message returns soon
            "CHROMASYNC_LOCK_TTL": "3",
            "CHROMASYNC_LOCK_SAFETY_MARGIN": "1",
            "CHROMASYNC_LOCK_WAIT": "1",
            "CHROMASYNC_RETRY_BACKOFF_BASE": "0.2",
            "CHROMASYNC_RETRY_BACKOFF_MAX": "1",
        }
    )
    return stack_env


def _writes(audit: Path, pid: int | None = None) -> list[dict]:
    if not audit.exists():
        return []
    return [
        r
        for r in read_audit(str(audit))
        if r["event"] == "write" and (pid is None or r["pid"] == pid)
    ]


def _pool_child(worker) -> int:
    """The prefork child that runs the tasks (the process that writes)."""
    children = Path(f"/proc/{worker.process.pid}/task/{worker.process.pid}/children")
    pids = [int(p) for p in children.read_text().split()]
    assert len(pids) == 1, pids
    return pids[0]


def start_a_long_batch(
    stack: Stack, worker_name: str
) -> tuple[list[ReceiptSpec], list[Change], WorkerProcess]:
    """A words worker, and one batch editing the merchant of 12 receipts: 216 ids, many
    write calls (``CHROMASYNC_WRITE_CHUNK``)."""
    receipts = demo_receipts(12, lines=3, words_per_line=6)
    stack.seed(receipts)
    worker = stack.start_worker(stack.words, name=worker_name)
    stack.edit_merchants(receipts, 1)
    changes = [make_change("RECEIPT_METADATA", "MODIFY", s) for s in receipts]
    send_batch(stack, changes)
    return receipts, changes, worker


def send_batch(stack: Stack, changes: list[Change]) -> None:
    """The changes as a new batch (its own batch id) to the words queue."""
    stack.send(batch(stack.words, *changes).to_payload(), stack.words)


def test_worker_killed_mid_batch_leaves_nothing_unapplied(
    fragile_env: dict[str, str], tmp_path: Path
) -> None:
    stack = Stack(fragile_env, tmp_path)
    audit = tmp_path / "audit.jsonl"
    try:
        receipts, _, worker = start_a_long_batch(stack, "doomed")
        # Some writes happened (216 ids, 5 per call), the batch is not finished: kill.
        wait_for(lambda: len(_writes(audit)) >= 3, 60, interval=0.01, what="first writes")
        os.killpg(worker.process.pid, signal.SIGKILL)
        worker.process.wait()
        written = len(_writes(audit))
        assert written < 216 / 5, "the batch finished before the kill; make it longer"
        assert not stack.at_edition(receipts, 1, (stack.words,))  # half-applied right now
        stack.start_worker(stack.words, name="reborn")

        def converged() -> bool:
            return stack.queues_empty() and stack.at_edition(receipts, 1, (stack.words,))

        wait_for(converged, 90, interval=1.0, what="the batch to come back and be applied")
        assert stack.queues_empty(include_dlq=True)
    finally:
        stack.stop()


def test_worker_paused_past_its_lease_writes_nothing_when_resumed(
    fragile_env: dict[str, str], tmp_path: Path
) -> None:
    """Chroma as a server here: with an embedded directory on one host the paused worker
    would also still hold the directory's file lock, and the successor would simply wait
    for it (tests/test_chroma_targets.py shows that lock). A server has no such lock, so
    only the lease stands between the paused worker and a stale write."""
    server = ChromaServer.start(tmp_path / "chroma-server", log=tmp_path / "chroma.log")
    fragile_env["CHROMASYNC_CHROMA_URL"] = server.url
    stack = Stack(fragile_env, tmp_path)
    audit = tmp_path / "audit.jsonl"
    try:
        receipts, changes, first = start_a_long_batch(stack, "paused")
        wait_for(lambda: len(_writes(audit)) >= 2, 60, interval=0.01, what="first writes")
        first_child = _pool_child(first)
        os.killpg(first.process.pid, signal.SIGSTOP)
        stopped_at = time.time()
        second = stack.start_worker(stack.words, name="successor")
        second_child = _pool_child(second)
        # The successor takes the lock once the paused lease expired, and works.
        stack.edit_merchants(receipts, 2)
        send_batch(stack, changes)
        wait_for(
            lambda: len(_writes(audit, second_child)) > 0,
            60,
            interval=0.1,
            what="the successor to write",
        )
        os.killpg(first.process.pid, signal.SIGCONT)
        resumed_at = time.time()
        wait_for(
            lambda: stack.queues_empty() and stack.at_edition(receipts, 2, (stack.words,)),
            120,
            interval=1.0,
            what="everything applied",
        )
        before = [w for w in _writes(audit, first_child) if w["start"] <= stopped_at]
        paused_lease = {(w["owner"], w["fence"]) for w in before}
        assert len(paused_lease) == 1
        # No write under the lease it held when paused; later writes are the retry of
        # its batch under a new lease with a higher fence.
        late = [
            w
            for w in _writes(audit, first_child)
            if w["start"] > stopped_at and (w["owner"], w["fence"]) in paused_lease
        ]
        assert late == [], f"the paused worker wrote after its lease was lost: {late[:3]}"
        # It noticed on its own clock and stopped (its batch was retried, not dropped).
        acquired = [r for r in read_audit(str(audit)) if r["event"] == "lock_acquired"]
        assert any(r["pid"] == second_child and r["at"] < resumed_at for r in acquired)
        assert stack.queues_empty(include_dlq=True)
    finally:
        stack.stop()
        server.stop()
