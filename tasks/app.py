"""The Celery app of the worker side, configured from ``celeryconfig``."""

from __future__ import annotations

import logging
from typing import Any

from celery import Celery
from celery.signals import worker_process_init

from chromasync.logs import install_worker_logging

app = Celery("chromasync", include=["tasks.compaction", "tasks.snapshots.task"])
app.config_from_object("celeryconfig")
install_worker_logging()

log = logging.getLogger(__name__)


@worker_process_init.connect
def _warm_runtime(**_: Any) -> None:
    """Build the runtime (imports chromadb, connects clients) before the first task.

    A failure here is only logged: the first task meets the same error, logs it
    and leaves its message unacknowledged, so SQS delivers it again after the
    visibility timeout (and the queue's RedrivePolicy dead-letters it if the
    error persists).
    """
    from tasks.runtime import get_runtime

    try:
        get_runtime()
    except Exception as exc:  # noqa: BLE001 - reported, then met again by the task
        log.warning("could not warm the worker runtime: %s", exc)
