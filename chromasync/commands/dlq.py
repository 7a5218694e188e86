"""``chromasync dlq list|show|redrive|purge``: look into and act on the dead-letter queues."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from chromasync.commands.common import whole_number
from chromasync.core.config import Settings
from chromasync.core.exits import EXIT_CONFIG


def register(sub: Any) -> None:
    dlq = sub.add_parser(
        "dlq",
        help="list, show, redrive or purge dead letters",
        description="Dead letters are changes that could not be applied: each holds the "
        "payload, the error, its traceback, the attempts and when it failed.",
    )
    actions = dlq.add_subparsers(dest="action", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--collection", help="one collection or sink target, e.g. dashboard (default: all)"
    )
    common.add_argument(
        "--limit",
        type=whole_number(1),
        default=100,
        metavar="N",
        help="most letters to handle, per collection (default 100)",
    )
    listing = actions.add_parser("list", parents=[common], help="one line per dead letter")
    listing.set_defaults(func=cmd_list)
    show = actions.add_parser("show", parents=[common], help="everything about one dead letter")
    show.add_argument("id", help="message id (a unique prefix is enough)")
    show.set_defaults(func=cmd_show)
    redrive = actions.add_parser(
        "redrive", parents=[common], help="send dead letters back to their queue as tasks"
    )
    redrive.add_argument("--id", help="only this message (a unique prefix is enough)")
    redrive.set_defaults(func=cmd_redrive)
    purge = actions.add_parser("purge", parents=[common], help="delete dead letters for good")
    purge.add_argument("--id", help="only this message (a unique prefix is enough)")
    purge.add_argument("--yes", action="store_true", help="really delete")
    purge.set_defaults(func=cmd_purge)


#: Seconds a letter being redriven or purged stays hidden until it is deleted.
REDRIVE_VISIBILITY = 60


def _queues(args: argparse.Namespace) -> tuple[Settings, Any, list[str]]:
    from tasks.deadletter import DeadLetterQueues

    settings = Settings.from_env()
    collections = settings.select_targets(args.collection)
    return settings, DeadLetterQueues(settings), collections


def _when(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S") if ts else "-"


def _changes(payload: Any) -> str:
    if isinstance(payload, dict) and isinstance(payload.get("changes"), list):
        return str(len(payload["changes"]))
    return "?"


def _letters(args: argparse.Namespace, take: bool) -> Iterator[tuple[str, Any, Any]]:
    """Dead letters of the chosen queues: peeked (left in place) or taken (to act on).

    The collections are checked here, before the caller prints anything.
    """
    _settings, queues, collections = _queues(args)
    return _each_letter(args, take, queues, collections)


def _each_letter(
    args: argparse.Namespace, take: bool, queues: Any, collections: list[str]
) -> Iterator[tuple[str, Any, Any]]:
    for collection in collections:
        if take:
            # Take the letters there are now, before acting: a redriven payload that
            # fails again comes back as a new letter and must not be taken again.
            letters = list(queues.receive(collection, args.limit, visibility=REDRIVE_VISIBILITY))
        else:
            letters = queues.peek(collection, args.limit)
        wanted = getattr(args, "id", None)
        for received in letters:
            if wanted and not received.message_id.startswith(wanted):
                if take:
                    # Not ours to act on: visible again at once, so `dlq list` shows it.
                    queues.release(collection, received)
                continue
            yield collection, queues, received


def cmd_list(args: argparse.Namespace) -> int:
    rows = 0
    letters = _letters(args, take=False)
    print(f"{'queue':<28} {'id':<10} {'error':<22} {'tries':>5} {'changes':>7}  last failure")
    for _collection, _q, received in letters:
        letter = received.letter
        rows += 1
        print(
            f"{received.queue:<28} {received.message_id[:8]:<10} {letter.error_type[:22]:<22} "
            f"{letter.attempts:>5} {_changes(letter.payload):>7}  {_when(letter.last_failure_at)}"
        )
        print(f"{'':<28} {letter.error[:110]}")
    print(f"{rows} dead letters")
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    for _collection, _q, received in _letters(args, take=False):
        letter = received.letter
        print(f"message id      {received.message_id}")
        print(f"queue           {received.queue}")
        print(f"collection      {letter.collection}")
        print(f"source          {letter.source}")
        print(f"error           {letter.error_type}: {letter.error}")
        print(f"attempts        {letter.attempts} (permanent: {letter.permanent})")
        print(f"first failure   {_when(letter.first_failure_at)}")
        print(f"last failure    {_when(letter.last_failure_at)}")
        print(f"worker          {letter.worker}  task {letter.task_id}")
        print("payload")
        print(json.dumps(letter.payload, indent=2, default=str))
        if letter.raw_body is not None:
            print("raw body (as SQS delivered it)")
            print(letter.raw_body)
        if letter.traceback:
            print("traceback")
            print(letter.traceback.rstrip())
        return 0
    print(f"chromasync: no dead letter with id {args.id!r}", file=sys.stderr)
    return 1


def cmd_redrive(args: argparse.Namespace) -> int:
    from chromasync.core.contract import APPLY_TASK_NAME
    from producers.publishing import producer_app

    app = producer_app()
    settings = Settings.from_env()
    sent = 0
    for collection, queues, received in _letters(args, take=True):
        if received.letter.payload is None:
            # An unreadable message or a call without a batch: nothing to send back.
            queues.release(collection, received)
            print(
                f"kept {received.message_id[:8]}: {received.letter.error_type} has no batch to "
                "send back (`dlq show` it, fix the sender, then `dlq purge --id`)"
            )
            continue
        options: dict[str, Any] = {"queue": settings.queue_for(collection)}
        if settings.fifo:
            options["MessageGroupId"] = f"redrive-{collection}"
        app.send_task(APPLY_TASK_NAME, args=[received.letter.payload], **options)
        queues.delete(collection, received)
        sent += 1
        print(f"redrove {received.message_id[:8]} to {options['queue']}")
    print(f"{sent} dead letters sent back to their queues")
    return 0


def cmd_purge(args: argparse.Namespace) -> int:
    if not args.yes:
        print("chromasync: purge deletes dead letters for good; add --yes", file=sys.stderr)
        return EXIT_CONFIG
    deleted = 0
    for collection, queues, received in _letters(args, take=True):
        queues.delete(collection, received)
        deleted += 1
    print(f"{deleted} dead letters deleted")
    return 0
