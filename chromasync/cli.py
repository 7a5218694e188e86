"""The ``chromasync`` command.

Each subcommand lives in :mod:`chromasync.commands` as a thin shell around the
module that does the work; settings come from the environment (see README),
flags override the few that an operator changes per run.
"""

from __future__ import annotations

import argparse
import importlib
import os
import select
import sys
from collections.abc import Sequence
from typing import TextIO

from chromasync.commands import COMMANDS
from chromasync.core.config import ConfigError
from chromasync.core.exits import EXIT_CONFIG, EXIT_OUTPUT_CLOSED, EXIT_UNAVAILABLE
from chromasync.core.resources import DeploymentError, not_permitted


def _setup_logging(verbose: bool) -> None:
    """Logs on stderr in ``CHROMASYNC_LOG_FORMAT`` (text or json): :mod:`chromasync.core.logs`."""
    from chromasync.core.logs import setup_logging

    setup_logging(verbose)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="chromasync",
        description="Keep ChromaDB collections in step with a DynamoDB table "
        "(stream -> Celery on SQS -> one writer per collection). Exit status: 0 done, "
        "1 the command's own failure (see its --help), 2 a usage or configuration error, "
        "3 a service unreachable or not deployed, 141 the output's reader went away "
        "(| head).",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)
    for name in COMMANDS:
        importlib.import_module(f"chromasync.commands.{name}").register(sub)
    return parser


def _reader_gone(stream: TextIO) -> bool:
    """Whether ``stream`` is a pipe (or socket) whose reader has closed it.

    Asked of the OS (poll reports POLLERR on a pipe's write end once its read
    end is closed) rather than read from the exception: a ``BrokenPipeError``
    also comes from a socket to SQS or Redis, and that one is an outage.
    """
    try:
        fd = stream.fileno()
    except (AttributeError, OSError, ValueError):
        return False
    poller = select.poll()
    poller.register(fd, select.POLLOUT)
    return any(event & (select.POLLERR | select.POLLHUP) for _fd, event in poller.poll(0))


def _closed_outputs() -> list[TextIO]:
    return [stream for stream in (sys.stdout, sys.stderr) if _reader_gone(stream)]


def _quietly_end_output(closed: list[TextIO]) -> int:
    """Point the closed outputs at /dev/null, so nothing more (nor the final flush) fails."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        for stream in closed:
            os.dup2(devnull, stream.fileno())
    finally:
        os.close(devnull)
    return EXIT_OUTPUT_CLOSED


def _failed(args: argparse.Namespace, exc: Exception) -> int:
    """The exit status of an exception a command let out (or raise it again: a bug)."""
    if isinstance(exc, ConfigError):
        print(f"chromasync: configuration error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    if isinstance(exc, DeploymentError):
        print(f"chromasync: {exc}", file=sys.stderr)
        return EXIT_UNAVAILABLE
    try:
        from tasks.errors import is_transient
    except ImportError:  # a producer-only install: the worker's dependencies are absent
        from chromasync.core.resources import is_unreachable as is_transient

    denied = not_permitted(exc, f"a call of `chromasync {args.command}`")
    if denied is not None:
        print(f"chromasync: {denied}", file=sys.stderr)
        return EXIT_UNAVAILABLE

    if is_transient(exc):
        print(
            f"chromasync: a service is unreachable: {type(exc).__name__}: {exc}",
            file=sys.stderr,
        )
        return EXIT_UNAVAILABLE
    raise exc


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        _setup_logging(args.verbose)
        status = int(args.func(args))
        # Output to a pipe is buffered: send it now, where a closed pipe is handled below,
        # rather than at exit, where Python can only complain about it.
        sys.stdout.flush()
        return status
    except BrokenPipeError as exc:
        closed = _closed_outputs()
        if closed:  # `chromasync ... | head`: the reader has what it wanted
            return _quietly_end_output(closed)
        return _failed(args, exc)
    except Exception as exc:
        return _failed(args, exc)


if __name__ == "__main__":
    sys.exit(main())
