"""The ``chromasync`` command.

Each subcommand is a thin shell around a module that does the work; settings
come from the environment (see README), flags override the few that an
operator changes per run.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path

from producers.config import ConfigError

#: Exit status for bad configuration or usage.
EXIT_CONFIG = 2
#: Exit status when a service (SQS, DynamoDB, Redis, Chroma) cannot be reached.
EXIT_UNAVAILABLE = 3


def _setup_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    for noisy in ("botocore", "urllib3", "chromadb", "kombu", "celery", "boto3"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def _stop_on_signals() -> threading.Event:
    stop = threading.Event()

    def handler(signum: int, frame: object) -> None:
        stop.set()

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)
    return stop


def cmd_run(args: argparse.Namespace) -> int:
    if args.demo:
        from chromasync.demo import run_demo

        report = run_demo(Path(args.workdir), receipts=args.receipts)
        print(report.render())
        return 0 if not report.mismatches else 1
    from chromasync.runner import RunningPipeline
    from producers.config import Settings

    settings = Settings.from_env()
    stop = _stop_on_signals()
    with RunningPipeline(
        settings, dict(os.environ), Path(args.workdir) / "logs", start=args.start
    ) as pipeline:
        print(
            f"chromasync running: table {settings.table}, collections "
            f"{', '.join(settings.collections)}; worker logs in {pipeline.log_dir}; "
            "Ctrl-C to stop"
        )
        while not stop.wait(1.0):
            pipeline.check_workers()
    return 0


def cmd_poll(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from producers.checkpoints import checkpoint_store_from_env
    from producers.config import Settings
    from producers.pipeline import StreamProcessor
    from producers.poller import StreamPoller
    from producers.publishing import Publisher

    settings = Settings.from_env()
    if args.table:
        settings = replace(settings, table=args.table)
    processor = StreamProcessor(settings, Publisher(settings))
    poller = StreamPoller(
        settings, processor, checkpoint_store_from_env(aws=settings.aws), start=args.start
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
    stop = _stop_on_signals()
    poller.run(stop)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="chromasync",
        description="Keep ChromaDB collections in step with a DynamoDB table "
        "(stream -> Celery on SQS -> one writer per collection).",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser(
        "run",
        help="run the pipeline: queues, one worker per collection, the stream poller",
        description="Run the pipeline until interrupted, against the endpoints the environment "
        "names. With --demo: start moto locally, seed receipts, edit them, wait "
        "until Chroma shows every edit, print a report and exit (0 when Chroma "
        "matches the table).",
    )
    run.add_argument(
        "--demo",
        action="store_true",
        help="self-contained demo on moto and an embedded Chroma directory",
    )
    run.add_argument(
        "--workdir",
        default=".chromasync/demo",
        help="where the demo keeps Chroma and logs (default: .chromasync/demo)",
    )
    run.add_argument("--receipts", type=int, default=8, help="receipts the demo seeds")
    run.add_argument(
        "--start",
        choices=["TRIM_HORIZON", "LATEST"],
        default="TRIM_HORIZON",
        help="where to start reading shards without a checkpoint",
    )
    run.set_defaults(func=cmd_run)

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
    poll.set_defaults(func=cmd_poll)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    _setup_logging(args.verbose)
    try:
        return int(args.func(args))
    except ConfigError as exc:
        print(f"chromasync: configuration error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except Exception as exc:
        from tasks.errors import is_transient

        if is_transient(exc):
            print(
                f"chromasync: a service is unreachable: {type(exc).__name__}: {exc}",
                file=sys.stderr,
            )
            return EXIT_UNAVAILABLE
        raise


if __name__ == "__main__":
    sys.exit(main())
