"""Load: 20,000 changes over 500 receipts through the whole path.

All applied, ``chromasync verify`` finds no drift, the dead-letter queues are empty, and
the worker's memory stays flat (its RSS is sampled from /proc while it works).
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from chromasync.core.keys import image_pk, receipt_sk, word_sk
from chromasync.local import wait_for
from chromasync.seed import demo_receipts, merchant_fields, text_item
from tests.stack import Stack, run_poller_in_thread

RECEIPTS = 500
ROUNDS = 10
CHANGES_PER_RECEIPT_PER_ROUND = 4  # merchant edit, two word edits, one label


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def pool_children(pid: int) -> list[int]:
    return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


@pytest.mark.timeout(1200)
def test_twenty_thousand_changes_over_five_hundred_receipts(
    stack_env: dict[str, str], tmp_path: Path
) -> None:
    stack = Stack(stack_env, tmp_path)
    stop_poller = None
    try:
        receipts = demo_receipts(RECEIPTS, lines=2, words_per_line=4)
        seeding = time.monotonic()
        stack.seed(receipts)
        print(f"\nload: seeded {RECEIPTS} receipts in {time.monotonic() - seeding:.0f}s")
        stack.start_workers()
        poller = stack.poller()
        _thread, stop_poller = run_poller_in_thread(poller)
        words_worker = stack.workers[1]
        samples: list[int] = []
        sampling = threading.Event()

        def sample() -> None:
            while not sampling.wait(0.5):
                children = pool_children(words_worker.process.pid)
                if children:
                    samples.append(rss_kib(children[0]))

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()

        def one_round(round_: int) -> int:
            """Four changes per receipt, written 25 items per BatchWriteItem call."""
            written = 0
            with stack.table.batch_writer() as writer:
                for index, spec in enumerate(receipts):
                    pk = image_pk(spec.image_id)
                    writer.put_item(
                        Item={
                            "PK": pk,
                            "SK": f"{receipt_sk(spec.receipt_id)}#METADATA",
                            **merchant_fields(index, round_),
                        }
                    )
                    for wid in (1, 2):
                        sk = word_sk(spec.receipt_id, 2, wid)
                        writer.put_item(Item=text_item(pk, sk, f"r{round_}w{wid}", "RECEIPT_WORD"))
                    writer.put_item(
                        Item={
                            "PK": pk,
                            "SK": f"{word_sk(spec.receipt_id, 1, 3)}#LABEL#L{round_}",
                            "label": f"L{round_}",
                            "validation_status": "VALID" if round_ % 2 else "PENDING",
                            "label_proposed_by": "load",
                            "timestamp_added": f"{round_:04d}",
                        }
                    )
                    written += CHANGES_PER_RECEIPT_PER_ROUND
            return written

        started = time.monotonic()
        written = sum(one_round(r) for r in range(1, ROUNDS + 1))
        assert written == RECEIPTS * ROUNDS * CHANGES_PER_RECEIPT_PER_ROUND == 20_000
        wrote_in = time.monotonic() - started

        def idle() -> bool:
            # The poller's last round read nothing (it reached the stream's end) and no
            # task is waiting or in flight.
            return not poller.busy and stack.queues_empty()

        wait_for(idle, 600, interval=2.0, what="the pipeline to apply everything")
        applied_in = time.monotonic() - started
        sampling.set()
        result = stack.cli("verify")
        assert result.returncode == 0, result.stdout[-3000:]
        assert stack.queues_empty(include_dlq=True)
        # Memory: the last quarter of the samples against the first quarter.
        assert len(samples) >= 8, samples
        quarter = len(samples) // 4
        early = sum(samples[:quarter]) / quarter
        late = sum(samples[-quarter:]) / quarter
        print(
            f"\nload: wrote 20,000 changes in {wrote_in:.0f}s, all applied after "
            f"{applied_in:.0f}s; words worker RSS early {early / 1024:.0f} MiB, "
            f"late {late / 1024:.0f} MiB, max {max(samples) / 1024:.0f} MiB"
        )
        assert late <= early * 1.25 + 20 * 1024, (early, late)
    finally:
        if stop_poller is not None:
            stop_poller.set()
        stack.stop()
