"""Producer side of chromasync: stream records become Celery tasks on per-collection queues.

Imports neither chromadb nor the worker code, so it deploys as a small Lambda zip.

``producers.enqueue`` and ``producers.enqueue_records`` (from
:mod:`producers.api`) are resolved on first use: ``celeryconfig`` and the
worker import :mod:`producers.config` and :mod:`producers.contract`, and
should not pay for the Celery producer app by doing so.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from producers.api import enqueue, enqueue_records

__all__ = ["enqueue", "enqueue_records"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        return getattr(importlib.import_module("producers.api"), name)
    raise AttributeError(f"module 'producers' has no attribute {name!r}")
