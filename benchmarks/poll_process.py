"""A stream poller in its own process, as ``chromasync poll`` runs it in production.

``python -m benchmarks.poll_process --mode chromasync|per-message [--idle-sleep S]``.
It writes the wall-clock time at which it starts polling to ``--ready-file``, so
throughput is timed from the first read of the stream, not from process start-up.
SIGTERM stops it after the current round (its checkpoint is kept).
"""

from __future__ import annotations

import argparse
import logging
import time
from collections.abc import Sequence
from pathlib import Path

from chromasync.commands.common import stop_on_signals
from chromasync.core.config import Settings
from producers import poller as poller_module
from producers.checkpoints import checkpoint_store_from_env
from producers.pipeline import StreamProcessor
from producers.poller import StreamPoller
from producers.publishing import Publisher


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mode", choices=["chromasync", "per-message"], default="chromasync")
    parser.add_argument("--idle-sleep", type=float, default=poller_module.IDLE_SLEEP)
    parser.add_argument("--ready-file", type=Path, required=True)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(message)s")

    settings = Settings.from_env()
    publisher = Publisher(settings)
    processor: StreamProcessor
    if args.mode == "per-message":
        from benchmarks.baseline_producer import PerMessageProcessor, per_message_queues

        processor = PerMessageProcessor(settings, per_message_queues(settings), publisher)
    else:
        processor = StreamProcessor(settings, publisher)
    poller = StreamPoller(settings, processor, checkpoint_store_from_env(aws=settings.aws))
    # Find the shards and their checkpoints before the clock starts.
    poller.discover()
    stop = stop_on_signals()
    args.ready_file.write_text(repr(time.time()))
    poller.run(stop, idle_sleep=args.idle_sleep)
    report = poller.stats.report
    print(
        f"poller {args.mode}: {report.records} records, {report.changes} changes, "
        f"{report.tasks_sent} tasks, rounds {poller.stats.rounds}, error {report.error}",
        flush=True,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
