"""cProfile of a worker, on demand: ``CHROMASYNC_PROFILE=DIR`` (``chromasync bench --profile``).

Where a worker's CPU goes is what decides which cut is worth making
(BENCHMARKS.md, "CPU per embedding"), and it has to be the real worker: the
main process receives from SQS and hands tasks to its pool child, the child
reads the table, plans and writes Chroma. Each of the two is profiled from
when it is ready to when it shuts down, and writes
``DIR/<collections>-<main|child>-<pid>.prof`` (``python -m pstats`` reads it).
Unset, nothing here runs: no profiler, no cost.
"""

from __future__ import annotations

import cProfile
import logging
import os
from pathlib import Path

log = logging.getLogger(__name__)

#: The variable naming the directory profiles go to.
PROFILE_ENV = "CHROMASYNC_PROFILE"

_profiler: cProfile.Profile | None = None
_role = "child"


def profile_dir() -> Path | None:
    """The directory profiles go to, or None when profiling is off."""
    value = os.environ.get(PROFILE_ENV, "").strip()
    return Path(value) if value else None


def start(role: str) -> None:
    """Profile this process from now on (``role``: ``main`` or ``child``); no-op when off."""
    global _profiler, _role
    if profile_dir() is None:
        return
    if _profiler is not None:  # inherited across the pool's fork: start afresh
        _profiler.disable()
    _role = role
    _profiler = cProfile.Profile()
    _profiler.enable()


def stop(collections: list[str]) -> Path | None:
    """Write this process's profile; its path, or None when profiling is off."""
    global _profiler
    directory = profile_dir()
    if _profiler is None or directory is None:
        return None
    _profiler.disable()
    directory.mkdir(parents=True, exist_ok=True)
    name = "-".join(collections) or "worker"
    path = directory / f"{name}-{_role}-{os.getpid()}.prof"
    _profiler.dump_stats(path)
    _profiler = None
    log.info("worker profile written to %s", path)
    return path
