"""``chromasync verify``: check each sink against the table; ``--repair`` enqueues fixes."""

from __future__ import annotations

import argparse
from typing import Any


def register(sub: Any) -> None:
    verify = sub.add_parser(
        "verify",
        help="find what a sink (Chroma, the dashboard) holds differently from the table",
        description="Compare what each sink holds for the chosen receipts with what the table "
        "says it should hold: every embedding of the Chroma collections, every item of the "
        "dashboard table (with CHROMASYNC_SINKS=chroma,dashboard). Exits 1 when anything "
        "drifted. --repair sends the corrective changes through the normal path (queue, "
        "lock, worker).",
    )
    verify.add_argument("--image", help="only this image id")
    verify.add_argument("--receipt", type=int, help="only this receipt id (with --image)")
    verify.add_argument(
        "--sink", help="only this sink of CHROMASYNC_SINKS, e.g. dashboard (default: all)"
    )
    verify.add_argument("--collection", help="only this Chroma collection (default: both)")
    verify.add_argument("--repair", action="store_true", help="enqueue corrective changes")
    verify.add_argument("--show", type=int, default=20, help="drift lines to print (default 20)")
    verify.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    from chromasync.core.config import ConfigError
    from chromasync.core.sinks import CHROMA
    from producers.publishing import Publisher
    from tasks.config import WorkerSettings
    from tasks.sinks import build_sink

    settings = WorkerSettings.from_env()
    shared = settings.shared
    if args.sink is not None and args.sink not in shared.sinks:
        raise ConfigError(
            f"unknown sink {args.sink!r}; CHROMASYNC_SINKS turns on {list(shared.sinks)}"
        )
    if args.collection is not None and args.sink not in (None, CHROMA):
        raise ConfigError("--collection names a Chroma collection: use it without --sink")
    names = [args.sink] if args.sink else list(shared.sinks)
    if args.collection is not None:
        names = [CHROMA]
    clean = True
    for name in names:
        if name == CHROMA:
            targets = shared.select_collections(args.collection)
        else:
            targets = [t for t in shared.targets if shared.sink_of(t) == name]
        sink = build_sink(name, settings)
        try:
            verification = sink.verify(targets, args.image, args.receipt)
        finally:
            sink.close()
        prefix = f"{name}: " if len(names) > 1 else ""
        print(prefix + verification.summary())
        drift = verification.drift
        for item in drift[: args.show]:
            fields = f" [{', '.join(item.fields)}]" if item.fields else ""
            detail = f" {item.detail}" if item.detail else ""
            print(f"  {item.kind:<8} {item.target:<8} {item.key}{fields}{detail}")
        if len(drift) > args.show:
            print(f"  ... and {len(drift) - args.show} more")
        if verification.clean:
            print(prefix + "no drift")
            continue
        clean = False
        if args.repair:
            batches = verification.repairs(shared.max_changes_per_task)
            publisher = Publisher(shared)
            for batch in batches:
                publisher.publish(batch)
            sent = sum(len(b.changes) for b in batches)
            print(f"{prefix}repair: {sent} corrective changes enqueued in {len(batches)} tasks")
            left = verification.unrepairable()
            if left:
                print(f"{prefix}repair: {left}")
    return 0 if clean else 1
