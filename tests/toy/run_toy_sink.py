"""Run by tests/test_toy_sink.py inside a copy of the tree with one more sink, ``ledger``.

The real pipeline: provisioning makes the ledger's queue and dead-letter queue
from ``CHROMASYNC_SINKS``, the poller routes line and receipt changes to it, its
own worker (with its own lock) applies them, ``verify`` checks and repairs it.
Prints one JSON object with what it saw.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

from chromasync.core.keys import image_pk, line_sk
from chromasync.local import wait_for
from chromasync.provision import queue_depth
from producers.publishing import Publisher
from tasks.config import WorkerSettings
from tasks.sinks import build_sink
from tests.stack import Stack

TIMEOUT = 60.0


def main(log_dir: Path) -> dict[str, Any]:
    from chromasync.seed import demo_receipts

    stack = Stack(dict(os.environ), log_dir)
    settings = WorkerSettings.from_env(stack.env)
    sink: Any = build_sink("ledger", settings)
    receipts = demo_receipts(2, lines=3, words_per_line=1)
    keys = [(r.image_id, r.receipt_id) for r in receipts]
    seen: dict[str, Any] = {"targets": list(stack.settings.targets)}
    seen["queues"] = [
        queue_depth(stack.sqs, name).exists
        for name in (stack.settings.sqs_queue_name("ledger"), stack.settings.dlq_name("ledger"))
    ]

    def entries() -> list[int | None]:
        return [sink.entry(k) for k in keys]

    try:
        with stack.running(receipts):
            seen["workers"] = sorted(w.collection for w in stack.workers)
            wait_for(lambda: entries() == [3, 3], TIMEOUT, 0.2, "the ledger filled")
            first = receipts[0]
            stack.table.delete_item(
                Key={"PK": image_pk(first.image_id), "SK": line_sk(first.receipt_id, 2)}
            )
            wait_for(lambda: entries() == [2, 3], TIMEOUT, 0.2, "a line's REMOVE applied")
            seen["after_remove"] = entries()
            seen["clean"] = sink.verify(["ledger"]).clean
            sink.redis.hset(f"chromasync:ledger:{first.image_id}#00001", "lines", 99)
            tampered = sink.verify(["ledger"])
            seen["drift"] = [[d.target, d.kind] for d in tampered.drift]
            for batch in tampered.repairs(100):
                Publisher(stack.settings).publish(batch)
            wait_for(lambda: sink.verify(["ledger"]).clean, TIMEOUT, 0.2, "the repair applied")
            seen["repaired"] = entries()
    finally:
        sink.close()
        stack.close()
    return seen


if __name__ == "__main__":
    print(json.dumps(main(Path(sys.argv[1]))))
