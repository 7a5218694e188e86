"""What several subcommands share: whole-number options, stopping on signals."""

from __future__ import annotations

import argparse
import signal
import threading
from collections.abc import Callable


def whole_number(low: int, high: int | None = None) -> Callable[[str], int]:
    """An argparse ``type`` for a whole number from ``low`` (to ``high``), with a clear error."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if high is not None and not low <= value <= high:
            raise argparse.ArgumentTypeError(f"must be {low}..{high}, got {value}")
        if value < low:
            raise argparse.ArgumentTypeError(f"must be at least {low}, got {value}")
        return value

    return parse


#: A TCP port a server command listens on: 1..65535 (0 would let the system pick one,
#: which nobody could then scrape or open).
port_number = whole_number(1, 65535)


def stop_on_signals() -> threading.Event:
    """An event set by SIGINT or SIGTERM, for loops that run until interrupted."""
    stop = threading.Event()

    def handler(signum: int, frame: object) -> None:
        stop.set()

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)
    return stop
