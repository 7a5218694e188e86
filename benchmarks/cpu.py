"""CPU seconds used by a process and its descendants (Linux ``/proc``), to show what is busy.

A pipeline stage whose process group uses about one core for the whole phase
is the bound (moto serves every DynamoDB request on one core, for example).
Every section also records the absolute seconds each process used
(:class:`CpuMeter`), so a workload's worker CPU can be divided by the
embeddings it wrote and set against Chroma's own CPU per embedding.
Elsewhere than Linux every figure is NaN: the benchmark still runs.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Mapping
from pathlib import Path

_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _stat(pid: int) -> tuple[int, float] | None:
    """(parent pid, user+system seconds) of one process, or None if it is gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = raw[raw.rindex(")") + 2 :].split()
    return int(fields[1]), (int(fields[11]) + int(fields[12])) / _TICKS


def cpu_seconds(pid: int) -> float:
    """User+system CPU seconds of ``pid`` and every live descendant; NaN without /proc."""
    if not Path("/proc").is_dir():
        return math.nan
    parents: dict[int, list[int]] = {}
    used: dict[int, float] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            stat = _stat(int(entry.name))
            if stat is not None:
                parents.setdefault(stat[0], []).append(int(entry.name))
                used[int(entry.name)] = stat[1]
    total, todo = 0.0, [pid]
    while todo:
        current = todo.pop()
        total += used.get(current, 0.0)
        todo.extend(parents.get(current, []))
    return total


def own_cpu_seconds() -> float:
    """User+system CPU seconds of this process alone (its threads, not its children).

    ``CLOCK_PROCESS_CPUTIME_ID`` (nanoseconds), not ``os.times`` (clock ticks,
    10 ms): the sink's CPU is summed over calls of a few tens of milliseconds.
    """
    return time.process_time()


#: The label of the benchmark's own process in every section's CPU seconds.
DRIVER = "driver"


class CpuMeter:
    """CPU seconds each process (and its descendants) used between :meth:`start` and
    :meth:`stop`, with this process as :data:`DRIVER`."""

    def __init__(self, pids: Mapping[str, int]) -> None:
        self.pids = dict(pids)
        self.before: dict[str, float] = {}

    def _now(self) -> dict[str, float]:
        now = {label: cpu_seconds(pid) for label, pid in self.pids.items()}
        now[DRIVER] = own_cpu_seconds()
        return now

    def start(self) -> CpuMeter:
        self.before = self._now()
        return self

    def stop(self) -> dict[str, float]:
        """Seconds per label (rounded to the millisecond)."""
        after = self._now()
        return {label: round(after[label] - self.before[label], 3) for label in after}


def worker_seconds(seconds: Mapping[str, float]) -> float:
    """The workers' CPU seconds summed (labels ``worker ...``)."""
    return sum(v for k, v in seconds.items() if k.startswith("worker"))
