"""Producer side of chromasync: stream records become Celery tasks on per-collection queues.

Imports neither chromadb nor the worker code, so it deploys as a small Lambda zip
(with the shared core, :mod:`chromasync.core`).

The API other services call: ``producers.enqueue`` and ``producers.enqueue_records``
(:mod:`producers.api`), and the exceptions they raise (:mod:`producers.errors`:
``EnqueueError`` and its subclasses).
"""

from producers.api import enqueue, enqueue_records
from producers.errors import (
    ChangeTooLarge,
    EnqueueError,
    InvalidChange,
    NotConfigured,
    NotDeployed,
    PublishError,
    PublishFailed,
)

__all__ = [
    "ChangeTooLarge",
    "EnqueueError",
    "InvalidChange",
    "NotConfigured",
    "NotDeployed",
    "PublishError",
    "PublishFailed",
    "enqueue",
    "enqueue_records",
]
