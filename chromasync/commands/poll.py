"""``chromasync poll``: follow the table's DynamoDB stream and enqueue tasks."""

from __future__ import annotations

import argparse
from dataclasses import replace
from typing import Any

from chromasync.commands.common import stop_on_signals, whole_number

#: The GetRecords API's maximum records per call (also the poller's default);
#: spelled out here so that ``chromasync --help`` does not import Celery.
GET_RECORDS_MAX = 1000


def register(sub: Any) -> None:
    poll = sub.add_parser(
        "poll",
        help="read the table's DynamoDB stream and enqueue tasks",
        description="Read every shard of the table's stream, publish tasks, checkpoint per "
        "shard (CHROMASYNC_CHECKPOINT_URL) and resume from the checkpoint.",
    )
    poll.add_argument("--table", help="table name (default: CHROMASYNC_TABLE)")
    poll.add_argument(
        "--start",
        choices=["TRIM_HORIZON", "LATEST"],
        default="TRIM_HORIZON",
        help="where to start shards that have no checkpoint",
    )
    poll.add_argument("--once", action="store_true", help="one round over all shards, then exit")
    poll.add_argument(
        "--batch-size",
        type=whole_number(1, GET_RECORDS_MAX),
        default=GET_RECORDS_MAX,
        metavar="N",
        help=f"records read per GetRecords call and checkpointed together, 1..{GET_RECORDS_MAX} "
        f"(default {GET_RECORDS_MAX})",
    )
    poll.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    from chromasync.core.config import Settings
    from chromasync.shard_metrics import ShardMetrics
    from producers.checkpoints import checkpoint_store_from_env
    from producers.pipeline import StreamProcessor
    from producers.poller import StreamPoller
    from producers.publishing import Publisher

    settings = Settings.from_env()
    if args.table:
        settings = replace(settings, table=args.table)
    processor = StreamProcessor(settings, Publisher(settings))
    poller = StreamPoller(
        settings,
        processor,
        checkpoint_store_from_env(aws=settings.aws),
        start=args.start,
        limit=args.batch_size,
        on_shard=ShardMetrics.from_env(),
    )
    if args.once:
        handled = poller.poll_once()
        report = poller.stats.report
        print(
            f"{handled} records handled; {report.changes} changes, "
            f"{report.tasks_sent} tasks sent, {sum(report.ignored.values())} ignored, "
            f"{len(report.malformed)} malformed"
        )
        return 1 if report.error else 0
    poller.run(stop_on_signals())
    return 0
