"""The ``chromasync`` command.

Each subcommand lives in :mod:`chromasync.commands` as a thin shell around the
module that does the work; settings come from the environment (see README),
flags override the few that an operator changes per run.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from chromasync.commands import COMMANDS
from chromasync.commands.common import EXIT_CONFIG, EXIT_UNAVAILABLE
from producers.config import ConfigError
from producers.resources import DeploymentError, not_permitted


def _setup_logging(verbose: bool) -> None:
    """Logs on stderr in ``CHROMASYNC_LOG_FORMAT`` (text or json), see :mod:`chromasync.logs`."""
    from chromasync.logs import setup_logging

    setup_logging(verbose)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="chromasync",
        description="Keep ChromaDB collections in step with a DynamoDB table "
        "(stream -> Celery on SQS -> one writer per collection).",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)
    for name in COMMANDS:
        importlib.import_module(f"chromasync.commands.{name}").register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        _setup_logging(args.verbose)
        return int(args.func(args))
    except ConfigError as exc:
        print(f"chromasync: configuration error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except DeploymentError as exc:
        print(f"chromasync: {exc}", file=sys.stderr)
        return EXIT_UNAVAILABLE
    except Exception as exc:
        try:
            from tasks.errors import is_transient
        except ImportError:  # a producer-only install: the worker's dependencies are absent
            from producers.resources import is_unreachable as is_transient

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
        raise


if __name__ == "__main__":
    sys.exit(main())
