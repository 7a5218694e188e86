"""Retry delays, one formula for every retry: publishing, polling a shard, a task's retry."""

from __future__ import annotations

import random


def backoff_delay(attempt: int, base: float, cap: float, rng: random.Random | None = None) -> float:
    """Full-jitter exponential backoff: uniform in [0, min(cap, base * 2**attempt)].

    Full jitter spreads the retries of many clients that failed together, so they
    do not come back together.
    """
    rng = rng or random.Random()
    return rng.uniform(0, min(cap, base * (2**attempt)))
