"""A one-line progress bar on a terminal, redrawn in place with ``\\r``.

Small on purpose: the commands only need "how far, how many", and a
dependency (tqdm) is not worth it for that. Callers draw it only when the
stream is a TTY, so logs and pipes never see carriage returns.
"""

from __future__ import annotations

import time
from typing import TextIO

#: Characters of the bar itself.
BAR_WIDTH = 30
#: Least seconds between two redraws; the last state is always drawn.
REDRAW_INTERVAL = 0.1


class ProgressBar:
    def __init__(self, stream: TextIO, label: str, unit: str = "records") -> None:
        self.stream = stream
        self.label = label
        self.unit = unit
        self._drawn_at = 0.0
        self._width = 0
        self._last: tuple[int, float | None] | None = None

    def render(self, count: int, fraction: float | None) -> str:
        if fraction is None:
            return f"{self.label}  {count:,} {self.unit}"
        fraction = min(max(fraction, 0.0), 1.0)
        filled = int(round(fraction * BAR_WIDTH))
        bar = "#" * filled + "-" * (BAR_WIDTH - filled)
        return f"{self.label} [{bar}] {fraction * 100:3.0f}%  {count:,} {self.unit}"

    def update(self, count: int, fraction: float | None) -> None:
        self._last = (count, fraction)
        now = time.monotonic()
        if now - self._drawn_at >= REDRAW_INTERVAL:
            self._draw(count, fraction)
            self._drawn_at = now

    def _draw(self, count: int, fraction: float | None) -> None:
        text = self.render(count, fraction)
        padding = " " * max(0, self._width - len(text))
        self.stream.write(f"\r{text}{padding}")
        self.stream.flush()
        self._width = len(text)

    def finish(self) -> None:
        """Draw the last state and end the line, so what follows starts clean."""
        if self._last is not None:
            self._draw(*self._last)
            self.stream.write("\n")
            self.stream.flush()
