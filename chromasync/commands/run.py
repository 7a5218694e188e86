"""``chromasync run [--demo]``: the whole pipeline, supervised, or the self-contained demo."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from chromasync.commands.common import stop_on_signals, whole_number

#: Where a non-demo ``run`` writes its workers' logs unless ``--log-dir`` says otherwise.
DEFAULT_LOG_DIR = ".chromasync/logs"
#: The demo's working directory (Chroma, moto's log, worker logs) unless ``--workdir``.
DEFAULT_DEMO_WORKDIR = ".chromasync/demo"
#: Seconds between two looks at the workers and the poller while running.
SUPERVISE_INTERVAL = 1.0
#: Exit status when a component kept stopping (or never became ready) and ``run`` gave up.
EXIT_GAVE_UP = 1


def register(sub: Any) -> None:
    from chromasync.supervisor import MAX_RESTARTS, RESTART_WINDOW

    run = sub.add_parser(
        "run",
        help="run the pipeline: one worker per collection and sink target, the stream poller",
        description="Run the pipeline until interrupted (Ctrl-C or SIGTERM), against the "
        "endpoints the environment names. Every setting is read and every service reached "
        "first (exit 2 for a wrong setting, 3 for a missing or unreachable service); "
        "'chromasync running' is printed once every worker consumes. A worker or the poller "
        "that stops is restarted with a backoff (1 s, doubling, at most 30 s); one that stops "
        "again after --max-restarts restarts within --restart-window seconds makes run stop "
        "everything and exit 1, naming it and quoting its log. With --demo: start moto "
        "locally, seed receipts, feed both sinks (Chroma and the receipts dashboard), edit "
        "them, wait until Chroma shows every edit, verify each sink against the table, "
        "print a report and exit (0 when both match the table).",
    )
    run.add_argument(
        "--demo", action="store_true", help="self-contained demo on moto and an embedded Chroma"
    )
    run.add_argument(
        "--log-dir",
        type=Path,
        default=None,
        help=f"where the worker logs go (default: {DEFAULT_LOG_DIR}; with --demo, WORKDIR/logs)",
    )
    run.add_argument(
        "--workdir",
        type=Path,
        default=None,
        help=f"--demo only: where Chroma, moto's log and the worker logs go "
        f"(default: {DEFAULT_DEMO_WORKDIR})",
    )
    run.add_argument(
        "--receipts", type=whole_number(1), default=8, help="receipts the demo seeds (default 8)"
    )
    run.add_argument(
        "--start",
        choices=["TRIM_HORIZON", "LATEST"],
        default="TRIM_HORIZON",
        help="where to start reading shards without a checkpoint",
    )
    run.add_argument(
        "--max-restarts",
        type=whole_number(0),
        default=MAX_RESTARTS,
        help=f"restarts of one worker (or the poller) within --restart-window after which "
        f"a further stop ends run with exit 1 (default {MAX_RESTARTS})",
    )
    run.add_argument(
        "--restart-window",
        type=whole_number(1),
        default=int(RESTART_WINDOW),
        metavar="SECONDS",
        help=f"seconds over which restarts are counted (default {RESTART_WINDOW:g})",
    )
    run.set_defaults(func=main, parser=run)


def main(args: argparse.Namespace) -> int:
    if args.demo:
        from chromasync.demo import run_demo

        workdir = args.workdir or Path(DEFAULT_DEMO_WORKDIR)
        report = run_demo(workdir, receipts=args.receipts)
        print(report.render())
        return 0 if not report.mismatches else 1
    if args.workdir is not None:
        args.parser.error("--workdir is for --demo; the pipeline's logs go to --log-dir")
    from chromasync.assembly import Assembly
    from chromasync.core.config import Settings
    from chromasync.runner import NotReady, RunningPipeline
    from chromasync.supervisor import GaveUp, RestartPolicy

    settings = Settings.from_env()
    policy = RestartPolicy(max_restarts=args.max_restarts, window=float(args.restart_window))
    log_dir = args.log_dir or Path(DEFAULT_LOG_DIR)
    stop = stop_on_signals()
    try:
        assembly = Assembly(settings, dict(os.environ), log_dir)
        with RunningPipeline(assembly, start=args.start, policy=policy) as pipeline:
            if not pipeline.wait_ready(stop):
                return 0  # interrupted while starting
            print(
                f"chromasync running: table {settings.table}, collections "
                f"{', '.join(settings.collections)}"
                + "".join(f", sink {name}" for name in settings.sinks[1:])
                + f"; worker logs in {pipeline.log_dir}; "
                "Ctrl-C to stop",
                flush=True,
            )
            while not stop.wait(SUPERVISE_INTERVAL):
                pipeline.supervise()
    except (GaveUp, NotReady) as exc:
        print(f"chromasync run: {exc}", file=sys.stderr)
        return EXIT_GAVE_UP
    return 0
