"""Worker events over a Redis side channel, so Flower can watch workers whose tasks ride on SQS.

Celery's worker sends its monitoring events (task-received/started/succeeded/
failed, worker-online/heartbeat/offline) through the dispatcher that the
consumer's ``Events`` bootstep creates on the *broker* connection. SQS has no
topic exchange to carry them, so Flower, which reads events, sees nothing.

:class:`SideChannelConsumer` (part of ``tasks.consumer.WorkerConsumer``,
selected by ``worker_consumer`` in ``celeryconfig``) is Celery's consumer with one bootstep changed:
:class:`SideChannelEvents` opens its own kombu connection to
``CHROMASYNC_EVENTS_URL`` (default ``REDIS_URL``, else
``redis://127.0.0.1:6379/0``) and sends every event there. Tasks, acks and
retries still go through SQS; ``chromasync flower`` reads the same Redis.

Events are best effort: a side channel that does not answer when the
consumer starts gets one warning and a disabled dispatcher (the worker runs
and applies tasks; Flower just does not see it until the worker restarts).
When Redis goes away later, each publish is tried once (never kombu's
reconnect-forever, which would freeze the worker's loop), fails within the
socket timeouts below, and waits in a bounded buffer until a later flush
gets through; the oldest are dropped first.

Only the events go to Redis: remote control (``celery inspect``, Flower's
pool/queue buttons) needs the broker's broadcast, which SQS does not offer,
and mingle/gossip stay off for the same reason.
"""

from __future__ import annotations

import logging
import os
from collections import deque
from collections.abc import Mapping
from typing import Any

from celery.events.dispatcher import EventDispatcher
from celery.worker.consumer.consumer import Consumer
from celery.worker.consumer.control import Control
from celery.worker.consumer.delayed_delivery import DelayedDelivery
from celery.worker.consumer.events import Events
from celery.worker.consumer.gossip import Gossip
from celery.worker.consumer.heart import Heart
from celery.worker.consumer.mingle import Mingle
from celery.worker.consumer.tasks import Tasks
from celery.worker.state import reserved_requests
from kombu import Connection
from kombu.common import ignore_errors

from chromasync.core.urls import redact_url

log = logging.getLogger(__name__)

#: Where events go unless ``CHROMASYNC_EVENTS_URL`` or ``REDIS_URL`` says otherwise.
DEFAULT_EVENTS_URL = "redis://127.0.0.1:6379/0"

#: Seconds to connect to, or wait on, the side channel: an event must never
#: hold up the worker's loop for long.
SOCKET_TIMEOUT = 1.0

#: Failed publishes kept while the side channel is down (a heartbeat, or one
#: batch of task events; about half an hour of heartbeats); older ones are dropped.
OFFLINE_BUFFER = 1000


def events_url(env: Mapping[str, str] | None = None) -> str:
    """The URL workers send events to and Flower reads them from."""
    env = os.environ if env is None else env
    return (
        env.get("CHROMASYNC_EVENTS_URL", "").strip()
        or env.get("REDIS_URL", "").strip()
        or DEFAULT_EVENTS_URL
    )


def events_connection(url: str) -> Connection:
    """A kombu connection to the side channel that fails fast instead of retrying.

    ``max_retries=0`` makes kombu try once per channel (its default retries
    forever), the socket timeouts bound a publish when Redis does not answer.
    """
    return Connection(
        url,
        connect_timeout=SOCKET_TIMEOUT,
        transport_options={
            "max_retries": 0,
            "socket_connect_timeout": SOCKET_TIMEOUT,
            "socket_timeout": SOCKET_TIMEOUT,
        },
    )


class SideChannelDispatcher(EventDispatcher):
    """Celery's dispatcher, made safe for a side channel that may go away.

    Celery keeps every event it failed to publish until the next flush; with
    Redis down for a day that would be all of them. A ``deque`` with a maximum
    length keeps the newest :data:`OFFLINE_BUFFER` (Celery only appends to,
    copies and clears it).
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._outbound_buffer: deque[Any] = deque(maxlen=OFFLINE_BUFFER)

    def send(self, type: str, *args: Any, **kwargs: Any) -> Any:
        """Celery's ``send``, with a publish that never waits to reconnect.

        The worker's Heart sends heartbeats (and worker-offline at shutdown) with
        ``retry=True`` and no policy, which in kombu means "reconnect forever":
        with Redis down, the worker's event loop would stop there and no task
        would be received. A failed publish goes to the buffer instead; redis-py
        reconnects on the next one.
        """
        kwargs["retry"] = False
        kwargs.pop("retry_policy", None)
        return super().send(type, *args, **kwargs)


class SideChannelEvents(Events):
    """The ``Events`` bootstep, sending to :func:`events_url` instead of the broker.

    ``start`` is Celery 5.7's, except for the connection, the dispatcher class
    and the probe; broker heartbeats are not registered because Redis, like
    SQS, has none (kombu's virtual transports do not implement them).
    """

    name = Events.name
    _warned = False

    def start(self, c: Consumer) -> None:
        previous = self._close(c)
        url = events_url()
        connection = self._connect(url) if self.send_events else None
        dispatcher = c.event_dispatcher = SideChannelDispatcher(
            # A disabled dispatcher still wants a transport to name its exchange.
            connection or Connection("memory://"),
            app=c.app,
            hostname=c.hostname,
            enabled=connection is not None,
            groups=self.groups,
            # As Celery does: task events are batched only with the event loop.
            buffer_group=["task"] if c.hub else None,
            on_send_buffered=c.on_send_event_buffered if c.hub else None,
        )
        if previous:
            # Events sent while the consumer was restarting go out now.
            dispatcher.extend_buffer(previous)
            dispatcher.flush()
            for request in tuple(reserved_requests):
                request.eventer = dispatcher
        if connection is not None:
            log.info("worker events go to %s", redact_url(url))

    @staticmethod
    def _connect(url: str) -> Connection | None:
        """A connection that answered, or None after one warning per process."""
        connection: Connection | None = None
        try:
            connection = events_connection(url)
            connection.ensure_connection(max_retries=0, timeout=SOCKET_TIMEOUT)
            return connection
        except Exception as exc:  # noqa: BLE001 - best effort: any failure turns events off
            if connection is not None:
                ignore_errors(connection, connection.release)
            if not SideChannelEvents._warned:
                SideChannelEvents._warned = True
                log.warning(
                    "worker events are off: %s (CHROMASYNC_EVENTS_URL) did not answer "
                    "(%s: %s); tasks are not affected, but Flower will not see this worker "
                    "until it restarts with the events channel up",
                    redact_url(url),
                    type(exc).__name__,
                    exc,
                )
            return None


# Celery's bootsteps name what they need by class. Every step that needs
# ``Events``, directly or through ``Mingle``/``Tasks``, is re-declared to need
# the side-channel step instead; names stay Celery's, so flags such as
# --without-mingle and anything that looks a step up by name behave the same.


class _Mingle(Mingle):
    name = Mingle.name
    requires = (SideChannelEvents,)


class _Heart(Heart):
    name = Heart.name
    requires = (SideChannelEvents,)


class _Gossip(Gossip):
    name = Gossip.name
    requires = (_Mingle,)


class _Tasks(Tasks):
    name = Tasks.name
    requires = (_Mingle,)


class _Control(Control):
    name = Control.name
    requires = (_Tasks,)


class _DelayedDelivery(DelayedDelivery):
    name = DelayedDelivery.name
    requires = (_Tasks,)


class SideChannelConsumer(Consumer):
    """Celery's consumer whose events go to the Redis side channel (see module doc)."""

    class Blueprint(Consumer.Blueprint):
        default_steps = [
            "celery.worker.consumer.connection:Connection",
            f"{__name__}:_Mingle",
            f"{__name__}:SideChannelEvents",
            f"{__name__}:_Gossip",
            f"{__name__}:_Heart",
            f"{__name__}:_Control",
            f"{__name__}:_Tasks",
            f"{__name__}:_DelayedDelivery",
            "celery.worker.consumer.consumer:Evloop",
            "celery.worker.consumer.agent:Agent",
        ]
