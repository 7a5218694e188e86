"""cProfile of a worker, on demand: ``CHROMASYNC_PROFILE=DIR`` (``chromasync bench --profile``).

Where a worker's CPU goes is what decides which cut is worth making
(BENCHMARKS.md, "CPU per embedding"), and it has to be the real worker: the
main process receives from SQS and hands tasks to its pool child, the child
reads the table, plans and writes Chroma. Each of the two is profiled from
when it is ready to when it shuts down, and writes
``DIR/<collections>-<main|child>-<pid>.prof`` (``python -m pstats`` reads it).
Unset, nothing here runs: no profiler, no cost.

The clock is each thread's CPU time (``time.thread_time``), and every thread
started after :func:`start` gets a profiler of its own, merged into the file:
the table reads run on a thread pool, and a wall-clock profile of the main
thread would show them as waiting (and Redis or SQS round trips as work).
"""

from __future__ import annotations

import cProfile
import logging
import os
import pstats
import threading
import time
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

#: The variable naming the directory profiles go to.
PROFILE_ENV = "CHROMASYNC_PROFILE"

_profiler: cProfile.Profile | None = None
#: One profiler per thread started since :func:`start` (each enabled in its own thread).
_threads: list[cProfile.Profile] = []
_role = "child"


def _new_profiler() -> cProfile.Profile:
    return cProfile.Profile(time.thread_time)


def _profile_thread(*_: Any) -> None:
    """A new thread's first profile event: give it a profiler of its own."""
    profiler = _new_profiler()
    _threads.append(profiler)
    profiler.enable()


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
    _threads.clear()
    _profiler = _new_profiler()
    threading.setprofile(_profile_thread)
    _profiler.enable()


def stop(collections: list[str]) -> Path | None:
    """Write this process's profile; its path, or None when profiling is off."""
    global _profiler
    directory = profile_dir()
    if _profiler is None or directory is None:
        return None
    _profiler.disable()
    threading.setprofile(None)
    stats = pstats.Stats(_profiler)
    for profiler in _threads:
        stats.add(profiler)
    directory.mkdir(parents=True, exist_ok=True)
    name = "-".join(collections) or "worker"
    path = directory / f"{name}-{_role}-{os.getpid()}.prof"
    stats.dump_stats(path)
    _profiler = None
    _threads.clear()
    log.info("worker profile written to %s", path)
    return path
