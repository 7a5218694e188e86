"""An update that arrives before its embedding exists waits, and is applied once the delta lands."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import boto3

from chromasync.core.keys import image_pk, receipt_sk, word_embedding_id, word_sk
from chromasync.local import wait_for
from chromasync.seed import demo_receipts, merchant_fields, publish_run, table_items
from tests.stack import Stack, run_poller_in_thread


def test_changes_before_their_delta_are_applied_when_it_is_merged(
    stack_env: dict[str, str], tmp_path: Path
) -> None:
    stack_env.update(
        {
            "CHROMASYNC_DELTA_BUCKET": "deltas",
            "CHROMASYNC_RETRY_BACKOFF_BASE": "0.2",
            "CHROMASYNC_RETRY_BACKOFF_MAX": "1",
        }
    )
    stack = Stack(stack_env, tmp_path)
    s3 = boto3.client("s3", **stack.settings.aws.client_kwargs())
    s3.create_bucket(Bucket="deltas")
    old, new = demo_receipts(2, lines=2, words_per_line=2)
    stack.seed([old])  # the new receipt has table items but no embeddings yet
    stack.start_workers()
    poller = stack.poller()
    thread, stop = run_poller_in_thread(poller)
    try:
        for item in table_items(new, 1):
            stack.table.put_item(Item=item)
        # Labels and merchant data change before the embedding job has finished.
        label = {
            "PK": image_pk(new.image_id),
            "SK": f"{word_sk(new.receipt_id, 2, 2)}#LABEL#TOTAL",
            "label": "TOTAL",
            "validation_status": "VALID",
            "label_proposed_by": "human",
            "timestamp_added": "2026-05-01T00:00:00",
        }
        stack.table.put_item(Item=label)
        fields = merchant_fields(1, edition=2)
        stack.table.put_item(
            Item={
                "PK": image_pk(new.image_id),
                "SK": f"{receipt_sk(new.receipt_id)}#METADATA",
                **fields,
            }
        )
        target = word_embedding_id(new.image_id, new.receipt_id, 2, 2)
        worker = stack.workers[1]
        wait_for(
            lambda: "embeddings not in words yet" in worker.log_tail(400),
            60,
            interval=0.2,
            what="the label change to wait for its embedding",
        )
        assert stack.collection(stack.words).get(ids=[target])["ids"] == []

        publish_run(
            s3, stack.table, "deltas", new, 1, "run-1", {"lines": stack.lines, "words": stack.words}
        )

        def applied() -> bool:
            got = stack.collection(stack.words).get(ids=[target], include=["metadatas"])
            if not got["ids"]:
                return False
            meta = got["metadatas"][0]
            return (
                meta.get("valid_labels") == ",TOTAL,"
                and meta.get("merchant_name") == fields["merchant_name"]
            )

        wait_for(applied, 90, interval=0.3, what="the waiting changes after the merge")

        def run_item() -> dict[str, Any]:
            return stack.table.get_item(
                Key={
                    "PK": image_pk(new.image_id),
                    "SK": f"{receipt_sk(new.receipt_id)}#COMPACTION_RUN#run-1",
                },
                ConsistentRead=True,
            )["Item"]

        # Each collection's worker merges the delta and marks the run on its own; the
        # words embedding above says nothing of when the lines worker is done.
        statuses = ("lines_merge_status", "words_merge_status")
        wait_for(
            lambda: all(run_item().get(s) for s in statuses),
            60,
            interval=0.3,
            what="both workers to mark the run",
        )
        run = run_item()
        assert [run[s] for s in statuses] == ["COMPLETED", "COMPLETED"]
        wait_for(lambda: stack.queues_empty(), 60, interval=0.3, what="queues to drain")
        verify = stack.cli("verify")
        assert verify.returncode == 0, verify.stdout + verify.stderr
        assert stack.queues_empty(include_dlq=True)
    finally:
        stop.set()
        thread.join(10)
        stack.stop()
