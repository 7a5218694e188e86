"""Publishing task payloads through Celery onto the per-collection SQS queues.

The producer uses its own small Celery app (configured from
``celeryconfig``) and sends by task *name*, so it never imports the worker
code. A publish that fails is retried with exponential backoff and jitter;
after the last attempt :class:`PublishError` is raised for the caller to
report (``batchItemFailures``, a non-zero exit) — never dropped. A queue
that does not exist or a send the role may not make is not retried: its
:class:`~chromasync.core.resources.DeploymentError` goes straight up, so the whole
invocation or command fails and names it.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

from celery import Celery

from chromasync.core.backoff import backoff_delay
from chromasync.core.config import Settings
from chromasync.core.contract import APPLY_TASK_NAME, ChangeBatch
from chromasync.core.groups import receipt_group
from chromasync.core.resources import DeploymentError, not_permitted
from chromasync.core.wire import WireBatch
from producers.errors import PublishError

log = logging.getLogger(__name__)

#: Attempts for one publish before it is reported as failed.
PUBLISH_ATTEMPTS = 5
#: First backoff delay in seconds; doubles each attempt, with jitter.
PUBLISH_BACKOFF_BASE = 0.2
#: Longest single backoff delay in seconds.
PUBLISH_BACKOFF_MAX = 5.0


def producer_app(env: Mapping[str, str] | None = None) -> Celery:
    """A Celery app that only sends; it knows task names, not task code.

    Configured from ``env`` (default: the process environment), as ``celeryconfig`` reads it.

    Its broker connection does not retry by itself: kombu would otherwise
    retry opening the SQS channel for up to ``broker_connection_timeout``
    (4 s, sleeping 2 s then 4 s) inside *every* attempt, so each attempt on
    an unreachable endpoint would wait seconds more on top of
    :class:`Publisher`'s own backoff. The publisher's retries are the only
    ones; the worker's settings (``celeryconfig``) are untouched.
    """
    from chromasync.core.celery_settings import celery_settings

    settings = celery_settings(env)
    settings["broker_transport_options"] = {
        **settings["broker_transport_options"],
        "max_retries": 0,
    }
    app = Celery("chromasync-producer", set_as_current=False)
    app.conf.update(settings)
    return app


def broker_endpoint(app: Celery) -> str:
    """Where the app's broker is, for error messages (never the credentials)."""
    parsed = urlparse(str(app.conf.broker_url or ""))
    if parsed.hostname:
        port = f":{parsed.port}" if parsed.port else ""
        return f"{parsed.scheme}://{parsed.hostname}{port}"
    region = (app.conf.broker_transport_options or {}).get("region", "")
    return f"AWS SQS {region}".strip()


@dataclass(frozen=True)
class Published:
    batch_id: str
    collection: str
    queue: str
    changes: int


SendFunc = Callable[..., Any]


class Publisher:
    """Sends task payloads to the collection's queue."""

    def __init__(
        self,
        settings: Settings,
        app: Celery | None = None,
        attempts: int = PUBLISH_ATTEMPTS,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.settings = settings
        self.app = app or producer_app()
        self.attempts = attempts
        self._sleep = sleep

    def _options(self, batch: WireBatch) -> dict[str, Any]:
        queue = self.settings.queue_for(batch.collection)
        options: dict[str, Any] = {"queue": queue, "retry": False}
        if self.settings.fifo:
            first = batch.changes[0]["keys"]
            options["MessageGroupId"] = receipt_group(first["image_id"], first["receipt_id"])
            event_ids = "|".join(c["event_id"] for c in batch.changes)
            digest = hashlib.sha256(f"{batch.collection}|{event_ids}".encode()).hexdigest()
            options["MessageDeduplicationId"] = digest[:128]
        return options

    def publish(self, batch: WireBatch | ChangeBatch) -> Published:
        """Send one batch (the producer's wire form, or a batch of ``Change`` models)."""
        batch = WireBatch.of(batch)
        payload = batch.to_payload()
        options = self._options(batch)
        last: Exception | None = None
        for attempt in range(self.attempts):
            try:
                self.app.send_task(
                    APPLY_TASK_NAME,
                    args=[payload],
                    argsrepr=repr([batch.summary()]),
                    **options,
                )
                return Published(
                    batch.batch_id, batch.collection, options["queue"], len(batch.changes)
                )
            except DeploymentError:
                raise  # no retry provisions a queue or grants a permission; fail loudly
            except Exception as exc:  # noqa: BLE001 - any broker error is retried, then reported
                denied = not_permitted(exc, f"sending a task to queue {options['queue']!r}")
                if denied is not None:
                    raise denied from exc
                last = exc
                if attempt + 1 >= self.attempts:
                    break
                delay = backoff_delay(attempt, PUBLISH_BACKOFF_BASE, PUBLISH_BACKOFF_MAX)
                log.warning(
                    "publish of %s to %s failed (attempt %d/%d): %s; retrying in %.2fs",
                    batch.batch_id,
                    options["queue"],
                    attempt + 1,
                    self.attempts,
                    exc,
                    delay,
                )
                self._sleep(delay)
        endpoint = broker_endpoint(self.app)
        raise PublishError(
            f"could not publish batch {batch.batch_id} ({len(batch.changes)} changes) to queue "
            f"{options['queue']!r} at {endpoint} after {self.attempts} attempts: {last}"
        ) from last
