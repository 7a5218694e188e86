"""An append-only record of lock holds and Chroma writes, one JSON object per line.

Set ``CHROMASYNC_AUDIT_LOG`` to a file path to turn it on. Each line carries
the collection, the lease owner and its fencing number, so an operator (or a
test) can prove that writes to one collection never overlapped and that every
write happened inside a lease. Lines are written with ``O_APPEND`` in one
``write`` call, so several worker processes can share one file.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any


class AuditLog:
    def __init__(self, path: str | None) -> None:
        self.path = path
        self._fd: int | None = None

    @property
    def enabled(self) -> bool:
        return bool(self.path)

    def record(self, event: str, **fields: Any) -> None:
        if not self.path:
            return
        if self._fd is None:
            self._fd = os.open(self.path, os.O_CREAT | os.O_WRONLY | os.O_APPEND, 0o644)
        line = json.dumps({"event": event, "pid": os.getpid(), "at": time.time(), **fields})
        os.write(self._fd, (line + "\n").encode())

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def read_audit(path: str) -> list[dict[str, Any]]:
    """Every record of an audit file (for reports and tests)."""
    with open(path, encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]
