"""``chromasync replay FILE``: send stream records kept in a file through the producer again."""

from __future__ import annotations

import argparse
import os
import stat
import sys
from typing import IO, Any

from chromasync.commands.common import EXIT_CONFIG, whole_number

#: Exit status when some record could not be published (or quarantined).
EXIT_NOT_PUBLISHED = 1


def register(sub: Any) -> None:
    replay = sub.add_parser(
        "replay",
        help="publish the changes of stream records kept in a file (JSON or NDJSON)",
        description="Read DynamoDB stream records from FILE (or - for stdin): a Lambda event "
        "({'Records': [...]}) or NDJSON, one record of either shape per line. They go through "
        "the same pipeline as the stream (malformed ones to the quarantine queue). Exit 0 when "
        "every record was published, ignored or quarantined; 1 when some could not be "
        "published (the summary says from which line); 2 on a configuration error.",
    )
    replay.add_argument("file", metavar="FILE", help="the records; - reads stdin")
    replay.add_argument(
        "--chunk-size",
        type=whole_number(1),
        default=None,
        metavar="N",
        help="records handed to the pipeline at once (default 500)",
    )
    replay.set_defaults(func=main)


def _size(stream: IO[bytes]) -> int | None:
    """Bytes in the input when it is a regular file (so progress can be a fraction)."""
    try:
        info = os.fstat(stream.fileno())
    except (OSError, ValueError):
        return None
    return info.st_size if stat.S_ISREG(info.st_mode) and info.st_size else None


def main(args: argparse.Namespace) -> int:
    from chromasync.progress import ProgressBar
    from producers.config import Settings
    from producers.pipeline import StreamProcessor
    from producers.publishing import Publisher
    from producers.replay import CHUNK_RECORDS, Replayer, read_input

    settings = Settings.from_env()
    replayer = Replayer(
        StreamProcessor(settings, Publisher(settings), source="replay"),
        args.chunk_size or CHUNK_RECORDS,
    )
    name = "stdin" if args.file == "-" else args.file
    try:
        stream: IO[bytes] = sys.stdin.buffer if args.file == "-" else open(args.file, "rb")  # noqa: SIM115
    except OSError as exc:
        print(f"chromasync replay: cannot read {name}: {exc.strerror}", file=sys.stderr)
        return EXIT_CONFIG
    bar = ProgressBar(sys.stderr, "replay") if sys.stderr.isatty() else None
    try:
        report = replayer.run(read_input(stream, _size(stream)), bar.update if bar else None)
    finally:
        if bar:
            bar.finish()
        if stream is not sys.stdin.buffer:
            stream.close()
    print(report.render(name))
    return 0 if report.ok else EXIT_NOT_PUBLISHED
