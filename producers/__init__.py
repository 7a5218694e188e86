"""Producer side of chromasync: stream records become Celery tasks on per-collection queues.

Imports neither chromadb nor the worker code, so it deploys as a small Lambda zip.

``producers.enqueue`` and ``producers.enqueue_records`` (from
:mod:`producers.api`) and the exceptions they raise (:mod:`producers.errors`:
``EnqueueError`` and its subclasses) are resolved on first use:
``celeryconfig`` and the worker import :mod:`chromasync.core.config` and
:mod:`chromasync.core.contract`, and should not pay for the Celery producer app by
doing so.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
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

#: The exported names, each with the module that defines it.
_HOMES = {
    "enqueue": "producers.api",
    "enqueue_records": "producers.api",
    "EnqueueError": "producers.errors",
    "InvalidChange": "producers.errors",
    "ChangeTooLarge": "producers.errors",
    "NotConfigured": "producers.errors",
    "NotDeployed": "producers.errors",
    "PublishFailed": "producers.errors",
    "PublishError": "producers.errors",
}

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


def __getattr__(name: str) -> Any:
    if name in _HOMES:
        return getattr(importlib.import_module(_HOMES[name]), name)
    raise AttributeError(f"module 'producers' has no attribute {name!r}")
