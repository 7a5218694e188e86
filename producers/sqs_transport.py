"""kombu's SQS transport, made to look queues up one by one and never create them.

kombu's own SQS channel lists every queue under the prefix when it opens
(``ListQueues``, which AWS authorises only against ``"*"``) and creates any
queue it does not find (``CreateQueue``). In a deployment only ``chromasync
provision`` creates queues, and the producer and worker roles
(``deploy/iam/*.json``) may do neither. This channel asks SQS for the URL of
each queue it uses, once (``GetQueueUrl``, authorised against that queue's
ARN), and turns a missing queue into :class:`~producers.resources.MissingResource`
naming it. Celery selects it through ``broker_transport`` (``celeryconfig``),
for the producer and the worker alike.

It overrides three methods of kombu's channel (``_update_queue_cache``,
``_resolve_queue_url``, ``_new_queue``) and closes the fourth
(``_create_queue``); ``tests/test_sqs_transport.py`` checks them against
kombu's SQS transport as installed.
"""

from __future__ import annotations

from typing import Any

from kombu.transport.SQS import Channel as SQSChannel
from kombu.transport.SQS import Transport as SQSTransport

from producers.resources import MissingResource, endpoint_of, queue_url

#: The value of Celery's ``broker_transport`` that selects this transport.
TRANSPORT_PATH = "producers.sqs_transport:LookupTransport"


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

    def _create_queue(self, queue_name: str, attributes: dict[str, Any]) -> Any:
        raise MissingResource("SQS queue", queue_name, endpoint_of(self.sqs()))


class LookupTransport(SQSTransport):
    """kombu's SQS transport with :class:`LookupChannel`."""

    Channel = LookupChannel
