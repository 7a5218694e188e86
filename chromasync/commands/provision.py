"""``chromasync provision``: create the queues (each with its dead-letter queue) and,
for local setups, the table with its stream."""

from __future__ import annotations

import argparse
from typing import Any


def register(sub: Any) -> None:
    provision = sub.add_parser(
        "provision",
        help="create the SQS queues with their dead-letter queues (and --table locally)",
        description="Create every collection's queue with a RedrivePolicy onto its dead-letter "
        "queue and the visibility timeout of CHROMASYNC_VISIBILITY_TIMEOUT. With --table, also "
        "create CHROMASYNC_TABLE with a NEW_AND_OLD_IMAGES stream (for local setups; in AWS the "
        "table belongs to the system that writes it). Safe to run again.",
    )
    provision.add_argument(
        "--table", action="store_true", help="also create the table with its stream"
    )
    provision.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    from chromasync.provision import ensure_queues, ensure_table
    from producers.config import Settings

    settings = Settings.from_env()
    if args.table:
        arn = ensure_table(settings)
        print(f"table {settings.table}: stream {arn}")
    for name, url in ensure_queues(settings).items():
        print(f"queue {name}: {url}")
    return 0
