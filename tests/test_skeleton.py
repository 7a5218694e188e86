"""Walking skeleton: a RECEIPT_METADATA MODIFY goes table → stream → SQS → worker → Chroma."""

from __future__ import annotations

import subprocess
import sys

import pytest
import redis

from chromasync.core.entities import MERCHANT_FIELDS
from chromasync.core.keys import image_pk, receipt_sk
from chromasync.local import wait_for
from chromasync.seed import demo_receipts
from tests.stack import Stack


def _merchant_of(collection, image_id: str, receipt_id: int) -> list[dict]:
    got = collection.get(
        where={"$and": [{"image_id": image_id}, {"receipt_id": receipt_id}]},
        include=["metadatas"],
    )
    return [{k: m.get(k) for k in MERCHANT_FIELDS} for m in got["metadatas"]]


def test_metadata_modify_reaches_every_embedding_of_the_receipt(
    stack: Stack, redis_client: redis.Redis
) -> None:
    receipts = demo_receipts(2, lines=3, words_per_line=2)
    stack.seed(receipts)
    stack.start_workers()
    poller = stack.poller()
    stack.drain(poller)  # the seeded INSERTs, applied as current state

    edited, untouched = receipts
    before_untouched = {
        c: _merchant_of(stack.collection(c), untouched.image_id, untouched.receipt_id)
        for c in (stack.lines, stack.words)
    }
    fences_before = {
        c: int(redis_client.get(f"chromasync:lock:collection:{c}:fence") or 0)
        for c in (stack.lines, stack.words)
    }
    stack.table.update_item(
        Key={"PK": image_pk(edited.image_id), "SK": f"{receipt_sk(edited.receipt_id)}#METADATA"},
        UpdateExpression="SET merchant_name = :m, canonical_merchant_name = :c",
        ExpressionAttributeValues={":m": "NEW NAME LLC", ":c": "New Name"},
    )
    sent_before = poller.stats.report.tasks_sent
    wait_for(lambda: poller.poll_once() > 0, 20, what="the MODIFY record")
    published = poller.stats.report.published[sent_before:]
    # One task per collection queue for the one record.
    assert sorted(p.queue for p in published) == sorted([stack.lines, stack.words])
    assert all(p.changes == 1 for p in published)

    def applied() -> bool:
        for name in (stack.lines, stack.words):
            rows = _merchant_of(stack.collection(name), edited.image_id, edited.receipt_id)
            if not rows or any(r["merchant_name"] != "NEW NAME LLC" for r in rows):
                return False
            if any(r["canonical_merchant_name"] != "New Name" for r in rows):
                return False
        return True

    wait_for(applied, 30, interval=0.1, what="Chroma to show the new merchant fields")
    lines = _merchant_of(stack.collection(stack.lines), edited.image_id, edited.receipt_id)
    words = _merchant_of(stack.collection(stack.words), edited.image_id, edited.receipt_id)
    assert len(lines) == edited.lines
    assert len(words) == edited.lines * edited.words_per_line
    # The other receipt was not touched.
    for name, rows in before_untouched.items():
        assert (
            _merchant_of(stack.collection(name), untouched.image_id, untouched.receipt_id) == rows
        )
    # Each worker took its collection's lock to write (the fence moved on).
    for name, before in fences_before.items():
        assert int(redis_client.get(f"chromasync:lock:collection:{name}:fence") or 0) > before


@pytest.mark.slow
def test_celery_finds_the_app_as_tasks_app() -> None:
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            "import tasks; tasks.app.loader.import_default_modules(); "
            "print(tasks.app.main, sorted(tasks.app.tasks))",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "chromasync" in out and "chromasync.apply_changes" in out


@pytest.mark.slow
def test_demo_prints_a_report_with_zero_mismatches(tmp_path) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "chromasync.cli",
            "run",
            "--demo",
            "--workdir",
            str(tmp_path / "demo"),
            "--receipts",
            "4",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    report = result.stdout
    assert "mismatches               0" in report
    assert "merchant edits           4" in report
    # 4 receipts x (6 lines + 24 words) carry the edits.
    assert "embeddings updated       120" in report
