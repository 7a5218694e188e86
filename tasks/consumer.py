"""The worker's consumer (``worker_consumer`` in ``celeryconfig``): Celery's, with two changes.

* events and heartbeats go to the Redis side channel, since SQS carries none
  (:class:`tasks.events.SideChannelConsumer`);
* a message the worker cannot run is dead-lettered at once with its body,
  never acknowledged into nothing nor left to the RedrivePolicy
  (:class:`tasks.intake.DeadLetteringConsumer`).
"""

from __future__ import annotations

from tasks.events import SideChannelConsumer
from tasks.intake import DeadLetteringConsumer


class WorkerConsumer(DeadLetteringConsumer, SideChannelConsumer):
    """Both behaviours; the bootsteps are :class:`SideChannelConsumer`'s."""
