"""CPU seconds used by a process and its descendants (Linux ``/proc``), to show what is busy.

A pipeline stage whose process group uses about one core for the whole phase
is the bound (moto serves every DynamoDB request on one core, for example).
Elsewhere than Linux every figure is NaN: the benchmark still runs.
"""

from __future__ import annotations

import math
import os
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
    """User+system CPU seconds of this process alone (its threads, not its children)."""
    times = os.times()
    return times.user + times.system
