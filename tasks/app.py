"""The Celery app of the worker side, configured from ``celeryconfig``."""

from __future__ import annotations

import logging
import sys
from typing import Any

from celery import Celery
from celery.signals import (
    worker_init,
    worker_process_init,
    worker_process_shutdown,
    worker_ready,
    worker_shutdown,
)

from chromasync.core.logs import install_worker_logging

app = Celery("chromasync", include=["tasks.compaction", "tasks.snapshots.task"])
app.config_from_object("celeryconfig")
install_worker_logging()

log = logging.getLogger(__name__)

#: The targets this worker consumes, found at start in the main process (the pool's
#: processes inherit it) so each warms the sinks it will write; empty: unknown.
_consumed: list[str] = []


def consumed_collections(worker: Any, collections: tuple[str, ...]) -> list[str]:
    """Which of ``collections`` (targets) a starting worker consumes (``-Q``); none if unknown."""
    try:
        queues = list(worker.app.amqp.queues.consume_from)
    except AttributeError:
        return []
    names = {str(q).removesuffix(".fifo") for q in queues}
    return [c for c in collections if c in names]


@worker_init.connect
def _preflight(sender: Any = None, **_: Any) -> None:
    """Refuse to start, with one line and exit status 2 or 3, unless every setting is right
    and every service answers (:mod:`tasks.preflight`).

    In the main process, before the pool forks and the consumer starts: a worker that
    starts has been able to reach what its tasks need. Connected before any other
    ``worker_init`` receiver (the restore on start), so it runs first.
    """
    from chromasync.core.config import Settings
    from tasks.preflight import check_worker, exit_status

    try:
        # None told (no -Q): check_worker checks every collection.
        consumed = consumed_collections(sender, Settings.from_env().targets)
        check_worker(consumed)
        global _consumed
        _consumed = consumed
    except Exception as exc:
        # Celery sets up its log handlers after worker_init: the line goes to stderr.
        print(_refusal(exc), file=sys.stderr, flush=True)
        # SystemExit passes through Celery's signal dispatch (it catches Exception only).
        raise SystemExit(exit_status(exc)) from exc


def _refusal(exc: BaseException) -> str:
    """The one line saying why the worker does not start, in CHROMASYNC_LOG_FORMAT."""
    from chromasync.core.logs import log_format, make_formatter

    try:
        fmt = log_format()
    except ValueError:  # the format itself is the wrong setting
        fmt = "text"
    record = log.makeRecord(
        log.name,
        logging.CRITICAL,
        __file__,
        0,
        "chromasync worker cannot start: %s: %s",
        (type(exc).__name__, exc),
        None,
    )
    return make_formatter(fmt).format(record)


@worker_process_init.connect
def _warm_runtime(**_: Any) -> None:
    """Build the runtime (imports chromadb, opens the collections, connects clients) before
    the first task.

    The services were reached at start (:func:`_preflight`); a failure here (one
    went away since) is only logged: the first task meets the same error, logs it
    and leaves its message unacknowledged, so SQS delivers it again after the
    visibility timeout (and the queue's RedrivePolicy dead-letters it if the
    error persists).
    """
    from tasks.runtime import get_runtime

    try:
        runtime = get_runtime()
        for target in _consumed or runtime.settings.shared.collections:
            runtime.sink_for(target).warm(target)
    except Exception as exc:  # noqa: BLE001 - reported, then met again by the task
        log.warning("could not warm the worker runtime: %s", exc)


@worker_process_init.connect
def _profile_child(**_: Any) -> None:
    """Profile the pool child when ``CHROMASYNC_PROFILE`` names a directory
    (:mod:`tasks.profiling`)."""
    from tasks import profiling

    profiling.start("child")


@worker_process_shutdown.connect
def _profile_child_done(**_: Any) -> None:
    from tasks import profiling

    profiling.stop(_consumed)


@worker_ready.connect
def _profile_main(**_: Any) -> None:
    """Profile the main process (SQS receives, hand-offs to the child) once the pool runs."""
    from tasks import profiling

    profiling.start("main")


@worker_shutdown.connect
def _profile_main_done(**_: Any) -> None:
    from tasks import profiling

    profiling.stop(_consumed)
