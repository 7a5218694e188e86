"""Run by tests/test_toy_entity.py inside a copy of the source tree whose registry has one
more entry, RECEIPT_NOTE: a receipt's note on every embedding of the receipt.

Everything is the real pipeline: the note item written to the table reaches the
stream, the poller routes it, a worker per collection applies it, and ``verify``
checks and repairs it. Prints one JSON object with what it saw.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

from chromasync.core import entities
from chromasync.core.keys import image_pk, receipt_sk
from chromasync.local import wait_for
from chromasync.seed import demo_receipts
from tasks.sources import TableReader
from tasks.verify import Verifier, repair_changes
from tests.stack import Stack

TIMEOUT = 60.0


def main(log_dir: Path) -> dict[str, Any]:
    stack = Stack(dict(os.environ), log_dir)
    seen: dict[str, Any] = {"registry": entities.__file__}
    receipts = demo_receipts(1, lines=2, words_per_line=2)
    receipt = receipts[0]
    key = {"PK": image_pk(receipt.image_id), "SK": f"{receipt_sk(receipt.receipt_id)}#NOTE"}
    names = list(stack.settings.collections)

    def notes() -> dict[str, list[Any]]:
        return {
            name: [
                m.get("note")
                for m in stack.collection(name).get(include=["metadatas"])["metadatas"]
            ]
            for name in names
        }

    def all_notes(value: Any) -> bool:
        return all(v and set(v) == {value} for v in notes().values())

    verifier = Verifier(
        TableReader(stack.settings.aws, stack.settings.table), stack.target, stack.settings.roles
    )
    try:
        with stack.running(receipts):
            stack.table.put_item(Item={**key, "note": "handwritten: keep"})
            wait_for(lambda: all_notes("handwritten: keep"), TIMEOUT, 0.2, "the note applied")
            seen["applied"] = notes()
            report, _ = verifier.verify()
            seen["clean_after_apply"] = report.clean

            tampered = stack.collection(names[1]).get()["ids"][0]
            stack.collection(names[1]).update(ids=[tampered], metadatas=[{"note": "tampered"}])
            report, states = verifier.verify()
            seen["drift"] = [[d.collection, d.kind, list(d.fields)] for d in report.drift]
            repairs = repair_changes(report, states, 100)
            seen["repairs"] = [
                [b.collection, [[c.entity_type, c.event_name] for c in b.changes]] for b in repairs
            ]
            for batch in repairs:
                stack.send(batch.to_payload(), batch.collection)
            wait_for(lambda: verifier.verify()[0].clean, TIMEOUT, 0.5, "the repair")
            seen["clean_after_repair"] = True

            stack.table.delete_item(Key=key)
            wait_for(lambda: all_notes(None), TIMEOUT, 0.2, "the note cleared")
            seen["removed"] = notes()
            seen["clean_after_remove"] = verifier.verify()[0].clean
    finally:
        stack.close()
    return seen


if __name__ == "__main__":
    print(json.dumps(main(Path(sys.argv[1]))))
