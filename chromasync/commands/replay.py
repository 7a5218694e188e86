"""``chromasync replay FILE``: send stream records kept in a file through the producer again."""

from __future__ import annotations

import argparse
import os
import stat
import sys
from typing import IO, Any

from chromasync.commands.common import whole_number
from chromasync.core.exits import EXIT_CONFIG
from producers.replay_input.model import UNREADABLE_HEAD_BYTES

#: Exit status when some record of the input was not published: a publish (or quarantine)
#: failed, or the document was cut short or broken (the records read before were published).
EXIT_NOT_PUBLISHED = 1


def register(sub: Any) -> None:
    replay = sub.add_parser(
        "replay",
        help="publish the changes of stream records kept in a file (JSON or NDJSON)",
        description="Read DynamoDB stream records from FILE (or - for stdin): a Lambda event "
        "({'Records': [...]}), a JSON list of records, one record, or NDJSON, one record of "
        "either shape per line. What the input is, is told from its first bytes before anything "
        "is sent, and it is read as a stream (any size, flat memory). Records go through the "
        "same pipeline as the stream (malformed ones, and NDJSON lines that are not JSON, to "
        "the quarantine queue). Exit 0 when every record was published, ignored or "
        "quarantined; 1 when some were not: a publish failed (the summary says from which "
        "line; replaying again is harmless), or the document was cut short or broken (the "
        "records before the fault were published; the summary says where); 2 on a "
        "configuration error, or for an input that is neither JSON nor NDJSON (nothing sent, "
        "unless --quarantine-unreadable).",
    )
    replay.add_argument("file", metavar="FILE", help="the records; - reads stdin")
    replay.add_argument(
        "--chunk-size",
        type=whole_number(1),
        default=None,
        metavar="N",
        help="records handed to the pipeline at once (default 500)",
    )
    replay.add_argument(
        "--quarantine-unreadable",
        action="store_true",
        help="an input that is neither JSON nor NDJSON is kept in the quarantine queue "
        f"(its first {UNREADABLE_HEAD_BYTES:,} bytes, one message) and the exit status is 0, "
        "instead of refusing it with status 2",
    )
    replay.set_defaults(func=main)


def _size(stream: IO[bytes]) -> int | None:
    """Bytes in the input when it is a regular file (so progress can be a fraction)."""
    try:
        info = os.fstat(stream.fileno())
    except (OSError, ValueError):
        return None
    return info.st_size if stat.S_ISREG(info.st_mode) and info.st_size else None


def _refuse(name: str, detail: str) -> int:
    print(
        f"chromasync replay: {name} is not stream records: {detail}. Nothing was sent; "
        "--quarantine-unreadable keeps it in the quarantine queue instead",
        file=sys.stderr,
    )
    return EXIT_CONFIG


def main(args: argparse.Namespace) -> int:
    from chromasync.core.config import Settings
    from chromasync.progress import ProgressBar
    from producers.pipeline import StreamProcessor
    from producers.publishing import Publisher
    from producers.replay import CHUNK_RECORDS, Replayer
    from producers.replay_input.shape import read_input

    settings = Settings.from_env()
    replayer = Replayer(
        StreamProcessor(settings, Publisher(settings), source="replay"),
        args.chunk_size or CHUNK_RECORDS,
        quarantine_unreadable=args.quarantine_unreadable,
    )
    name = "stdin" if args.file == "-" else args.file
    try:
        stream: IO[bytes] = sys.stdin.buffer if args.file == "-" else open(args.file, "rb")  # noqa: SIM115
    except OSError as exc:
        print(f"chromasync replay: cannot read {name}: {exc.strerror}", file=sys.stderr)
        return EXIT_CONFIG
    try:
        source = read_input(stream, _size(stream))
        if source.problem is not None and not args.quarantine_unreadable:
            return _refuse(name, source.problem.detail)  # told from its first bytes
        print(f"chromasync replay: reading {name} as {source.kind}", file=sys.stderr)
        bar = ProgressBar(sys.stderr, "replay") if sys.stderr.isatty() else None
        try:
            report = replayer.run(source, bar.update if bar else None)
        finally:
            if bar:
                bar.finish()
    finally:
        if stream is not sys.stdin.buffer:
            stream.close()
    if report.unreadable and not args.quarantine_unreadable:
        # Told only once the parser refused what looked like JSON; no record was read.
        assert report.problem is not None and report.records == 0
        return _refuse(name, report.problem.detail)
    print(report.render(name))
    return 0 if report.ok else EXIT_NOT_PUBLISHED
