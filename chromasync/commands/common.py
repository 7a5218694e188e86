"""What several subcommands share: exit statuses and stopping on signals."""

from __future__ import annotations

import signal
import threading

#: Exit status for bad configuration or usage.
EXIT_CONFIG = 2
#: Exit status when a service (SQS, DynamoDB, Redis, Chroma) cannot be reached.
EXIT_UNAVAILABLE = 3


def stop_on_signals() -> threading.Event:
    """An event set by SIGINT or SIGTERM, for loops that run until interrupted."""
    stop = threading.Event()

    def handler(signum: int, frame: object) -> None:
        stop.set()

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)
    return stop
