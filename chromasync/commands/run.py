"""``chromasync run [--demo]``: the whole pipeline, or the self-contained demo."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from chromasync.commands.common import stop_on_signals


def register(sub: Any) -> None:
    run = sub.add_parser(
        "run",
        help="run the pipeline: queues, one worker per collection, the stream poller",
        description="Run the pipeline until interrupted, against the endpoints the environment "
        "names. With --demo: start moto locally, seed receipts, edit them, wait "
        "until Chroma shows every edit, print a report and exit (0 when Chroma "
        "matches the table).",
    )
    run.add_argument(
        "--demo", action="store_true", help="self-contained demo on moto and an embedded Chroma"
    )
    run.add_argument(
        "--workdir",
        default=".chromasync/demo",
        help="where Chroma (demo) and the worker logs go (default: .chromasync/demo)",
    )
    run.add_argument("--receipts", type=int, default=8, help="receipts the demo seeds")
    run.add_argument(
        "--start",
        choices=["TRIM_HORIZON", "LATEST"],
        default="TRIM_HORIZON",
        help="where to start reading shards without a checkpoint",
    )
    run.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    if args.demo:
        from chromasync.demo import run_demo

        report = run_demo(Path(args.workdir), receipts=args.receipts)
        print(report.render())
        return 0 if not report.mismatches else 1
    from chromasync.runner import RunningPipeline
    from producers.config import Settings

    settings = Settings.from_env()
    stop = stop_on_signals()
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
