"""Real servers for the tests: moto in server mode and redis-server on 127.0.0.1."""

from __future__ import annotations

import os

from chromasync.local import MotoServer, free_port, wait_for

__all__ = ["MotoServer", "free_port", "redis_url", "wait_for"]


def redis_url() -> str:
    return os.environ.get("CHROMASYNC_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
