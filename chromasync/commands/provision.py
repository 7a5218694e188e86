"""``chromasync provision``: create every queue, table and bucket the settings name.

The only command that creates anything (see :mod:`chromasync.provision`);
everything else looks resources up and names what is missing.
"""

from __future__ import annotations

import argparse
from typing import Any


def register(sub: Any) -> None:
    provision = sub.add_parser(
        "provision",
        help="create the queues, dead-letter queues, tables and bucket the pipeline uses",
        description="Create every collection's queue with a RedrivePolicy onto its dead-letter "
        "queue and the visibility timeout of CHROMASYNC_VISIBILITY_TIMEOUT, the quarantine "
        "queue of malformed stream records, the checkpoint table (CHROMASYNC_CHECKPOINT_URL) "
        "and the lock table (CHROMASYNC_LOCK_URL) when they are DynamoDB tables, and the "
        "snapshot bucket (CHROMASYNC_SNAPSHOT_BUCKET). With --table, also create "
        "CHROMASYNC_TABLE with a NEW_AND_OLD_IMAGES stream (for local setups; in AWS the "
        "table belongs to the system that writes it). Nothing else in chromasync creates "
        "resources. Safe to run again.",
    )
    provision.add_argument(
        "--table", action="store_true", help="also create the table with its stream"
    )
    provision.add_argument(
        "--no-snapshot-bucket",
        dest="snapshot_bucket",
        action="store_false",
        help="do not create the snapshot bucket (snapshots unused, or the bucket is managed "
        "elsewhere)",
    )
    provision.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    import os

    from chromasync.provision import provision

    made = provision(os.environ, source_table=args.table, snapshot_bucket=args.snapshot_bucket)
    for resource in made:
        print(resource.line())
    return 0
