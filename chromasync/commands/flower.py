"""``chromasync flower``: Flower on the events side channel, behind basic auth.

Workers send their events to Redis (:mod:`tasks.events`), so Flower's broker is
that Redis, not SQS. The command checks its settings, then replaces itself (exec)
with ``python -m chromasync.flower_auth flower ...`` (Celery's ``flower`` command
with every route but ``/healthcheck`` behind the basic auth, :mod:`chromasync.flower_auth`:
Flower itself leaves ``/metrics`` and its static files open), the broker URL and
the credentials in the environment (``CELERY_BROKER_URL``, ``FLOWER_BASIC_AUTH``)
so that neither shows in ``ps``. No ``-A``: Flower needs only the events, and loading the worker app
would pull in chromadb for nothing; Celery's default app still reads
``celeryconfig`` (serializers, timezone), whose broker is then that URL.

What cannot work over this channel is switched off rather than left to hang:
remote control (``inspect``, pool and queue buttons, revoke) needs workers that
listen on the broker's broadcast, and ours listen on SQS, which has none.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping
from typing import Any

from chromasync.commands.common import port_number
from chromasync.core.exits import EXIT_CONFIG

USER_ENV = "CHROMASYNC_FLOWER_USER"
PASSWORD_ENV = "CHROMASYNC_FLOWER_PASSWORD"
DEFAULT_USER = "admin"

#: Milliseconds Flower waits for an ``inspect`` reply; none ever comes, so keep
#: the refresh button and a worker's page from hanging (Flower's default is 1000).
INSPECT_TIMEOUT_MS = 200

#: Columns of the Tasks page: args and result are short; the uuid links to a task's page
#: (kwargs, a retry's failure history, is shown there).
TASK_COLUMNS = "name,state,args,worker,received,runtime,result,uuid"


def register(sub: Any) -> None:
    flower = sub.add_parser(
        "flower",
        help="run Flower on the workers' events (Redis side channel), with basic auth",
        description="Start Flower reading the events workers send to CHROMASYNC_EVENTS_URL "
        "(default REDIS_URL, else redis://127.0.0.1:6379/0). Basic auth is on: user "
        f"{USER_ENV} (default {DEFAULT_USER!r}), password {PASSWORD_ENV} (required unless "
        "--no-auth). Flower is read-only: remote control needs a broadcast SQS does not have.",
    )
    flower.add_argument("--address", default="127.0.0.1", help="address to listen on")
    flower.add_argument(
        "--port", type=port_number, default=5555, help="port to listen on (default 5555)"
    )
    flower.add_argument(
        "--no-auth",
        action="store_true",
        help="run without basic auth (anyone who reaches the port sees every task)",
    )
    flower.set_defaults(func=main)


def credentials(env: Mapping[str, str]) -> tuple[str, str] | str:
    """(user, password) from the environment, or the message that refuses them."""
    user = env.get(USER_ENV, "").strip() or DEFAULT_USER
    password = env.get(PASSWORD_ENV, "")
    if not password:
        return (
            f"{PASSWORD_ENV} is not set: Flower shows every task of every worker, so it runs "
            f"behind basic auth (user {USER_ENV}, default {DEFAULT_USER!r}); set a password, "
            "or pass --no-auth to run it open on purpose"
        )
    # Flower splits its list of credentials on commas and each one on its first colon.
    if "," in password or "," in user or ":" in user:
        return f"{USER_ENV} may not hold ',' or ':' and {PASSWORD_ENV} may not hold ','"
    return user, password


def flower_command(address: str, port: int) -> list[str]:
    return [
        sys.executable,
        "-m",
        # Celery's command line, Flower's routes put behind the basic auth first.
        "chromasync.flower_auth",
        "flower",
        f"--address={address}",
        f"--port={port}",
        # Workers send task events by configuration; Flower's periodic
        # enable_events broadcast would reach nobody.
        "--enable_events=False",
        f"--inspect_timeout={INSPECT_TIMEOUT_MS}",
        # Control commands and "apply task" would go to Redis, where no worker listens.
        "--read_only=True",
        f"--tasks_columns={TASK_COLUMNS}",
    ]


def flower_env(
    env: Mapping[str, str], events_url: str, auth: tuple[str, str] | None
) -> dict[str, str]:
    """Flower's environment: the broker URL and the password travel here, not in argv."""
    child = dict(env)
    child["CELERY_BROKER_URL"] = events_url
    child.pop("FLOWER_BASIC_AUTH", None)
    if auth is not None:
        child["FLOWER_BASIC_AUTH"] = f"{auth[0]}:{auth[1]}"
    return child


def main(args: argparse.Namespace) -> int:
    from chromasync.core.urls import redact_url
    from tasks.events import events_url

    found = credentials(os.environ)
    auth: tuple[str, str] | None
    if args.no_auth:
        auth = None
        print(
            "chromasync flower: WARNING: basic auth is off (--no-auth): anyone who reaches "
            f"{args.address}:{args.port} sees every task",
            file=sys.stderr,
        )
    elif isinstance(found, str):
        print(f"chromasync flower: {found}", file=sys.stderr)
        return EXIT_CONFIG
    else:
        auth = found
    url = events_url()
    print(
        f"chromasync flower: http://{args.address}:{args.port} "
        f"reading events from {redact_url(url)}",
        file=sys.stderr,
    )
    sys.stderr.flush()
    # Become Flower: signals (Ctrl-C, docker stop) and the exit status are Flower's own.
    command = flower_command(args.address, args.port)
    os.execve(command[0], command, flower_env(os.environ, url, auth))
