"""The process-wide producer pieces, built from the environment once, on first use.

A Lambda container serves many invocations and a service calling
:func:`producers.enqueue` sends many times: reading the settings and opening
the Celery app (its broker connection, its SQS queue-URL cache) once per
process keeps each call to the cost of its own messages. Built lazily, so
importing a producer module reads no environment and opens nothing.
"""

from __future__ import annotations

import threading

from chromasync.core.config import Settings
from producers.pipeline import StreamProcessor
from producers.publishing import Publisher

_lock = threading.Lock()
_settings: Settings | None = None
_publisher: Publisher | None = None
_processors: dict[str, StreamProcessor] = {}


def settings() -> Settings:
    """The settings read from the environment (raises ConfigError naming a bad variable)."""
    global _settings
    with _lock:
        if _settings is None:
            _settings = Settings.from_env()
        return _settings


def publisher() -> Publisher:
    """The one Publisher of this process."""
    global _publisher
    current = settings()
    with _lock:
        if _publisher is None:
            _publisher = Publisher(current)
        return _publisher


def processor(source: str) -> StreamProcessor:
    """The StreamProcessor for one entry point (``lambda``, ``api``...), sharing the Publisher."""
    shared = publisher()
    with _lock:
        if source not in _processors:
            _processors[source] = StreamProcessor(shared.settings, shared, source=source)
        return _processors[source]


def reset() -> None:
    """Forget everything, so the next use reads the environment again (tests, reconfiguration)."""
    global _settings, _publisher
    with _lock:
        _settings = None
        _publisher = None
        _processors.clear()
