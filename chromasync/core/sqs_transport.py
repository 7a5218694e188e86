"""kombu's SQS transport, made to look queues up one by one and never create them.

kombu's own SQS channel lists every queue under the prefix when it opens
(``ListQueues``, which AWS authorises only against ``"*"``) and creates any
queue it does not find (``CreateQueue``). In a deployment only ``chromasync
provision`` creates queues, and the producer and worker roles
(``deploy/iam/*.json``) may do neither. This channel asks SQS for the URL of
each queue it uses, once (``GetQueueUrl``, authorised against that queue's
ARN), and turns a missing queue into :class:`~chromasync.core.resources.MissingResource`
naming it. Celery selects it through ``broker_transport`` (``celeryconfig``),
for the producer and the worker alike.

Declaring a queue is looking it up. kombu's declare also counts the queue's
messages (``GetQueueAttributes``) for a result nobody here reads; it is not
asked for, so neither role needs that permission for it (the count is 0).

It overrides four methods of kombu's channel (``_update_queue_cache``,
``_resolve_queue_url``, ``_new_queue``, ``queue_declare``) and closes a fifth
(``_create_queue``); ``tests/test_sqs_transport.py`` checks them against
kombu's SQS transport as installed.
"""

from __future__ import annotations

from typing import Any

from amqp.protocol import queue_declare_ok_t
from kombu.transport.SQS import Channel as SQSChannel
from kombu.transport.SQS import Transport as SQSTransport

from chromasync.core.resources import MissingResource, endpoint_of, queue_url

#: The value of Celery's ``broker_transport`` that selects this transport.
TRANSPORT_PATH = "chromasync.core.sqs_transport:LookupTransport"


class LookupChannel(SQSChannel):
    """An SQS channel that resolves queue URLs with GetQueueUrl and creates nothing."""

    def _update_queue_cache(self, queue_name_prefix: str) -> None:
        """No ListQueues: each queue is looked up when it is first used."""

    def _resolve_queue_url(self, queue: str) -> str:
        name = str(self.canonical_queue_name(queue))
        cache: dict[str, str] = self._queue_cache
        url = cache.get(name)
        if url is None:
            url = queue_url(self.sqs(queue=name), name)
            cache[name] = url
        return url

    def _new_queue(self, queue: Any, **kwargs: Any) -> Any:
        if not isinstance(queue, str):
            return queue
        return self._resolve_queue_url(queue)

    def queue_declare(self, queue: str | None = None, passive: bool = False, **kwargs: Any) -> Any:
        """Look the queue up (MissingResource if it is not there); its message count is
        not read, so the result says 0."""
        if queue is None:
            raise MissingResource("SQS queue", "(unnamed)", endpoint_of(self.sqs()))
        self._resolve_queue_url(queue)
        return queue_declare_ok_t(queue, 0, 0)

    def _create_queue(self, queue_name: str, attributes: dict[str, Any]) -> Any:
        raise MissingResource("SQS queue", queue_name, endpoint_of(self.sqs()))


class LookupTransport(SQSTransport):
    """kombu's SQS transport with :class:`LookupChannel`."""

    Channel = LookupChannel
