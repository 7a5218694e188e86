"""``chromasync verify``: reconcile Chroma against the table; ``--repair`` enqueues fixes."""

from __future__ import annotations

import argparse
from typing import Any


def register(sub: Any) -> None:
    verify = sub.add_parser(
        "verify",
        help="find embeddings that are missing, extra or differ from the table",
        description="Compare every embedding of the chosen receipts with what the table says "
        "it should hold. Exits 1 when anything drifted. --repair sends the corrective "
        "changes through the normal path (queue, lock, worker).",
    )
    verify.add_argument("--image", help="only this image id")
    verify.add_argument("--receipt", type=int, help="only this receipt id (with --image)")
    verify.add_argument("--collection", help="only this collection (default: both)")
    verify.add_argument("--repair", action="store_true", help="enqueue corrective changes")
    verify.add_argument("--show", type=int, default=20, help="drift lines to print (default 20)")
    verify.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    from producers.publishing import Publisher
    from tasks.chroma.factory import chroma_target_from_settings
    from tasks.config import WorkerSettings
    from tasks.sources import TableReader
    from tasks.verify import Verifier, repair_changes

    settings = WorkerSettings.from_env()
    shared = settings.shared
    wanted = shared.select_collections(args.collection)
    roles = {role: name for role, name in shared.roles.items() if name in wanted}
    verifier = Verifier(
        TableReader(shared.aws, shared.table), chroma_target_from_settings(settings), roles
    )
    report, states = verifier.verify(args.image, args.receipt)
    print(
        f"checked {report.receipts} receipts, {report.embeddings_checked} embeddings: "
        f"{report.count('missing')} missing, {report.count('extra')} extra, "
        f"{report.count('metadata')} with drifted metadata"
    )
    for drift in report.drift[: args.show]:
        fields = f" [{', '.join(drift.fields)}]" if drift.fields else ""
        detail = f" {drift.detail}" if drift.detail else ""
        print(f"  {drift.kind:<8} {drift.collection:<8} {drift.embedding_id}{fields}{detail}")
    if len(report.drift) > args.show:
        print(f"  ... and {len(report.drift) - args.show} more")
    if report.clean:
        print("no drift")
        return 0
    if args.repair:
        publisher = Publisher(shared)
        batches = repair_changes(report, states, shared.max_changes_per_task)
        for batch in batches:
            publisher.publish(batch)
        sent = sum(len(b.changes) for b in batches)
        print(f"repair: {sent} corrective changes enqueued in {len(batches)} tasks")
        if report.count("missing"):
            print(
                f"repair: {report.count('missing')} missing embeddings cannot be rebuilt from "
                "the table (it holds no vectors); re-run the embedding job for them"
            )
    return 1
