"""Real worker processes: dead letters and redrive, retries, one writer per collection,
both lock backends, Chroma as a server."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from chromasync.core.keys import image_pk, receipt_sk, word_embedding_id
from chromasync.local import ChromaServer, wait_for
from chromasync.seed import demo_receipts, merchant_fields, seed_chroma
from tasks.audit import read_audit
from tasks.locks import lock_backend_from_url
from tests.stack import Stack
from tests.test_worker_apply import batch, make_change


def _words_meta(stack: Stack, eid: str) -> dict[str, Any] | None:
    got = stack.collection(stack.words).get(ids=[eid], include=["metadatas"])
    return got["metadatas"][0] if got["ids"] else None


def _set_merchant(stack: Stack, spec, index: int, edition: int) -> dict[str, str]:
    fields = merchant_fields(index, edition)
    stack.table.put_item(
        Item={
            "PK": image_pk(spec.image_id),
            "SK": f"{receipt_sk(spec.receipt_id)}#METADATA",
            **fields,
        }
    )
    return fields


def _dlq_count(stack: Stack, collection: str) -> int:
    url = stack.sqs.get_queue_url(QueueName=stack.settings.dlq_name(collection))["QueueUrl"]
    attrs = stack.sqs.get_queue_attributes(
        QueueUrl=url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return int(attrs["ApproximateNumberOfMessages"]) + int(
        attrs["ApproximateNumberOfMessagesNotVisible"]
    )


@pytest.fixture
def fast_env(stack_env: dict[str, str]) -> dict[str, str]:
    stack_env.update(
        {
            "CHROMASYNC_RETRY_BACKOFF_BASE": "0.2",
            "CHROMASYNC_RETRY_BACKOFF_MAX": "1",
            "CHROMASYNC_LOCK_WAIT": "0.5",
        }
    )
    return stack_env


def test_poison_payloads_land_in_the_dlq_and_redrive_applies_them_after_a_fix(
    fast_env: dict[str, str], tmp_path: Path
) -> None:
    fast_env["CHROMASYNC_MISSING_EMBEDDING_TIMEOUT"] = "0"
    stack = Stack(fast_env, tmp_path)
    try:
        (spec,) = demo_receipts(1, lines=2, words_per_line=2)
        stack.seed([spec])
        missing = word_embedding_id(spec.image_id, spec.receipt_id, 1, 2)
        stack.collection(stack.words).delete(ids=[missing])
        stack.start_worker(stack.words)
        # 1: another service sends a payload of a schema we do not know.
        stack.send({"schema_version": 2, "collection": stack.words, "changes": [{}]}, stack.words)
        # 2: a valid change whose embedding does not exist (and will not appear in time).
        stack.send(
            batch(stack.words, make_change("RECEIPT_WORD", "MODIFY", spec, 1, 2)).to_payload(),
            stack.words,
        )
        wait_for(
            lambda: _dlq_count(stack, stack.words) == 2, 60, interval=0.2, what="two dead letters"
        )
        listing = stack.cli("dlq", "list", "--collection", stack.words)
        assert listing.returncode == 0, listing.stderr
        assert "ValidationError" in listing.stdout and "EmbeddingMissing" in listing.stdout
        assert "2 dead letters" in listing.stdout
        message_id = next(
            line.split()[1] for line in listing.stdout.splitlines() if "EmbeddingMissing" in line
        )
        shown = stack.cli("dlq", "show", message_id)
        assert shown.returncode == 0, shown.stderr
        assert "traceback" in shown.stdout and "EmbeddingMissing" in shown.stdout
        assert '"entity_type": "RECEIPT_WORD"' in shown.stdout
        assert "first failure" in shown.stdout and "attempts" in shown.stdout

        # The fix: the embedding arrives. Then redrive everything.
        seed_chroma(stack.target, stack.words, "words", [spec])
        stack.collection(stack.words).update(ids=[missing], metadatas=[{"text": "stale"}])
        redrive = stack.cli("dlq", "redrive", "--collection", stack.words)
        assert redrive.returncode == 0, redrive.stderr
        assert "2 dead letters sent back" in redrive.stdout
        wait_for(
            lambda: (_words_meta(stack, missing) or {}).get("text") == "w1.2",
            60,
            interval=0.2,
            what="the redriven change to be applied",
        )
        # The payload of an unknown schema is refused again: back in the DLQ, alone.
        wait_for(
            lambda: _dlq_count(stack, stack.words) == 1,
            60,
            interval=0.2,
            what="the bad payload back in the DLQ",
        )
        purge = stack.cli("dlq", "purge", "--collection", stack.words)
        assert purge.returncode == 2 and "--yes" in purge.stderr
        purge = stack.cli("dlq", "purge", "--collection", stack.words, "--yes")
        assert "1 dead letters deleted" in purge.stdout
    finally:
        stack.stop()


def test_one_invalid_change_does_not_fail_the_rest_of_its_batch(stack: Stack) -> None:
    (spec,) = demo_receipts(1, lines=2, words_per_line=2)
    stack.seed([spec])
    fields = _set_merchant(stack, spec, 0, 6)
    stack.start_worker(stack.words)
    good = make_change("RECEIPT_METADATA", "MODIFY", spec).model_dump(mode="json")
    bad = {**good, "entity_type": "NOT_AN_ENTITY"}
    payload = {"schema_version": 1, "collection": stack.words, "changes": [bad, good]}
    stack.send(payload, stack.words)
    eid = word_embedding_id(spec.image_id, spec.receipt_id, 2, 2)
    wait_for(
        lambda: (_words_meta(stack, eid) or {}).get("merchant_name") == fields["merchant_name"],
        60,
        interval=0.2,
        what="the good change",
    )
    wait_for(lambda: _dlq_count(stack, stack.words) == 1, 30, interval=0.2, what="the bad change")


def test_a_busy_lock_is_retried_with_backoff_until_free(
    fast_env: dict[str, str], tmp_path: Path
) -> None:
    stack = Stack(fast_env, tmp_path)
    try:
        (spec,) = demo_receipts(1, lines=2, words_per_line=2)
        stack.seed([spec])
        fields = _set_merchant(stack, spec, 0, 8)
        backend = lock_backend_from_url(fast_env["CHROMASYNC_LOCK_URL"])
        held = backend.acquire(f"collection:{stack.words}", "someone-else", 60)
        assert held is not None
        worker = stack.start_worker(stack.words)
        stack.send(
            batch(stack.words, make_change("RECEIPT_METADATA", "MODIFY", spec)).to_payload(),
            stack.words,
        )
        wait_for(
            lambda: worker.log_tail(400).count("LockBusy") >= 2,
            60,
            interval=0.2,
            what="two retries on the busy lock",
        )
        eid = word_embedding_id(spec.image_id, spec.receipt_id, 1, 1)
        assert (_words_meta(stack, eid) or {}).get("merchant_name") != fields["merchant_name"]
        backend.release(held)
        wait_for(
            lambda: (_words_meta(stack, eid) or {}).get("merchant_name") == fields["merchant_name"],
            60,
            interval=0.2,
            what="the change after release",
        )
        assert _dlq_count(stack, stack.words) == 0
    finally:
        stack.stop()


def _intervals(records: list[dict[str, Any]]) -> tuple[list[tuple], list[tuple]]:
    holds: dict[tuple, list[float]] = {}
    writes = []
    for r in records:
        key = (r["owner"], r["fence"])
        if r["event"] == "lock_acquired":
            holds[key] = [r["at"], float("inf")]
        elif r["event"] == "lock_releasing":
            holds[key][1] = r["at"]
        elif r["event"] == "write":
            writes.append((r["start"], r["end"], key))
    return [(a, b, k) for k, (a, b) in holds.items()], writes


@pytest.mark.parametrize("lock", ["redis", "dynamodb"])
def test_two_workers_on_one_collection_never_write_at_the_same_time(
    stack_env: dict[str, str], tmp_path: Path, lock: str
) -> None:
    audit = tmp_path / "audit.jsonl"
    stack_env["CHROMASYNC_AUDIT_LOG"] = str(audit)
    if lock == "dynamodb":
        stack_env["CHROMASYNC_LOCK_URL"] = f"dynamodb://{stack_env['CHROMASYNC_TABLE']}-locks"
    stack = Stack(stack_env, tmp_path)
    try:
        receipts = demo_receipts(6, lines=4, words_per_line=5)
        stack.seed(receipts)
        stack.start_worker(stack.words, name="a")
        stack.start_worker(stack.words, name="b")
        expected = {}
        for round_ in range(1, 4):
            for index, spec in enumerate(receipts):
                expected[index] = _set_merchant(stack, spec, index, round_)
                change = make_change("RECEIPT_METADATA", "MODIFY", spec)
                stack.send(batch(stack.words, change).to_payload(), stack.words)
        wait_for(stack.queues_empty, 120, interval=0.3, what="both workers to drain the queue")
        for index, spec in enumerate(receipts):
            eid = word_embedding_id(spec.image_id, spec.receipt_id, 4, 5)
            assert _words_meta(stack, eid)["merchant_name"] == expected[index]["merchant_name"]
        records = read_audit(str(audit))
        holds, writes = _intervals(records)
        assert len(writes) >= 18 and len({r["pid"] for r in records}) == 2
        # Every write lies inside a lock hold of its own lease ...
        for start, end, key in writes:
            assert any(k == key and a <= start and end <= b for a, b, k in holds)
        # ... and lock holds of different leases never overlap, so neither do writes.
        holds.sort()
        for (_a1, b1, k1), (a2, _b2, k2) in zip(holds, holds[1:], strict=False):
            assert b1 <= a2, f"{k1} held until {b1} but {k2} acquired at {a2}"
        fences = [k[1] for _a, _b, k in holds]
        assert fences == sorted(fences) and len(set(fences)) == len(fences)
    finally:
        stack.stop()


def test_worker_writes_to_a_chroma_server(stack_env: dict[str, str], tmp_path: Path) -> None:
    server = ChromaServer.start(tmp_path / "chroma-server", log=tmp_path / "chroma.log")
    try:
        stack_env["CHROMASYNC_CHROMA_URL"] = server.url
        stack = Stack(stack_env, tmp_path)
        try:
            receipts = demo_receipts(2, lines=2, words_per_line=3)
            stack.seed(receipts)
            stack.start_workers()
            spec = receipts[1]
            fields = _set_merchant(stack, spec, 1, 4)
            for collection in (stack.lines, stack.words):
                stack.send(
                    batch(collection, make_change("RECEIPT_METADATA", "MODIFY", spec)).to_payload(),
                    collection,
                )
            eid = word_embedding_id(spec.image_id, spec.receipt_id, 2, 3)
            wait_for(
                lambda: (
                    (_words_meta(stack, eid) or {}).get("merchant_name") == fields["merchant_name"]
                ),
                60,
                interval=0.2,
                what="the server to be written",
            )
            # No embedded directory was created: everything went to the server.
            assert not (tmp_path / "chroma").exists()
            assert json.dumps(fields)  # fields are plain strings
        finally:
            stack.stop()
    finally:
        server.stop()


def test_a_task_moved_by_the_redrive_policy_is_listed_and_redriven(stack: Stack) -> None:
    """SQS moves a task whose worker kept dying to the DLQ as the raw Celery message."""
    (spec,) = demo_receipts(1, lines=1, words_per_line=2)
    stack.seed([spec])
    fields = _set_merchant(stack, spec, 0, 3)
    payload = batch(stack.words, make_change("RECEIPT_METADATA", "MODIFY", spec)).to_payload()
    # The same bytes SQS would move: a Celery message, sent here straight to the DLQ.
    dlq_queue = stack.settings.dlq_name(stack.words).removeprefix(stack.settings.queue_prefix)
    stack.send(payload, dlq_queue)
    listing = stack.cli("dlq", "list", "--collection", stack.words)
    assert "WorkerLost" in listing.stdout and "1 dead letters" in listing.stdout
    assert "RedrivePolicy" in listing.stdout
    stack.start_worker(stack.words)
    assert "1 dead letters sent back" in stack.cli("dlq", "redrive").stdout
    eid = word_embedding_id(spec.image_id, spec.receipt_id, 1, 2)
    wait_for(
        lambda: (_words_meta(stack, eid) or {}).get("merchant_name") == fields["merchant_name"],
        60,
        interval=0.2,
        what="the redriven task",
    )
    assert _dlq_count(stack, stack.words) == 0
