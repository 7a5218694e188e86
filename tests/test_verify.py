"""``chromasync verify`` on a seeded system with drift injected behind the system's back."""

from __future__ import annotations

from chromasync.core.keys import line_embedding_id, word_embedding_id
from chromasync.local import wait_for
from chromasync.seed import demo_receipts, vector
from tests.stack import Stack


def test_verify_finds_reports_and_repairs_drift(stack: Stack) -> None:
    receipts = demo_receipts(3, lines=2, words_per_line=2)
    stack.seed(receipts)
    stack.start_workers()
    stack.drain(stack.poller())  # the seeded inserts applied: Chroma matches the table
    clean = stack.cli("verify")
    assert clean.returncode == 0, clean.stdout + clean.stderr
    assert "no drift" in clean.stdout

    a, b, c = receipts
    deleted = word_embedding_id(a.image_id, a.receipt_id, 1, 1)
    stack.collection(stack.words).delete(ids=[deleted])
    changed = line_embedding_id(b.image_id, b.receipt_id, 2)
    stack.collection(stack.lines).update(ids=[changed], metadatas=[{"merchant_name": "WRONG"}])
    relabelled = word_embedding_id(c.image_id, c.receipt_id, 2, 1)
    stack.collection(stack.words).update(ids=[relabelled], metadatas=[{"valid_labels": ",TOTAL,"}])
    extra = word_embedding_id(c.image_id, c.receipt_id, 9, 9)
    stack.collection(stack.words).add(
        ids=[extra],
        embeddings=[vector(extra)],
        metadatas=[{"image_id": c.image_id, "receipt_id": c.receipt_id, "line_id": 9}],
    )
    orphan = line_embedding_id("gone-image", 1, 1)
    stack.collection(stack.lines).add(
        ids=[orphan],
        embeddings=[vector(orphan)],
        metadatas=[{"image_id": "gone-image", "receipt_id": 1}],
    )

    found = stack.cli("verify")
    assert found.returncode == 1, found.stdout + found.stderr
    assert "1 missing, 2 extra, 2 with drifted metadata" in found.stdout
    for eid in (deleted, changed, relabelled, extra, orphan):
        assert eid in found.stdout
    assert "merchant_name: chroma 'WRONG' != table" in found.stdout

    scoped = stack.cli("verify", "--image", b.image_id, "--receipt", str(b.receipt_id))
    assert "checked 1 receipts" in scoped.stdout and "0 extra, 1 with drifted" in scoped.stdout

    repaired = stack.cli("verify", "--repair")
    assert repaired.returncode == 1
    assert "corrective changes enqueued" in repaired.stdout
    assert "1 missing embeddings cannot be rebuilt" in repaired.stdout

    def only_missing_left() -> bool:
        out = stack.cli("verify").stdout
        return "1 missing, 0 extra, 0 with drifted metadata" in out

    wait_for(only_missing_left, 60, interval=0.5, what="the repairs to be applied")
    assert stack.queues_empty(include_dlq=True)
