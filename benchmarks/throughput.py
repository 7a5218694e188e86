"""A workload end to end: table writes, stream, SQS, worker, Chroma; per second.

The writes go into the table first, as fast as moto takes them (timed on their
own: moto's write rate); then the poller starts, and the clock runs from its
first read of the stream to the end of the last Chroma write that made the
workload visible (from the workers' audit log). So the figure is the pipeline's
capacity to drain a backlog, not the rate at which this machine can write the
table, and the benchmark's own visibility polling does not blur it.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any

from benchmarks.cpu import CpuMeter, worker_seconds
from benchmarks.stack import BenchStack
from benchmarks.workload import TableOp


@dataclass(frozen=True)
class ThroughputResult:
    name: str
    design: str
    changes: int
    kinds: dict[str, int]
    #: Embedding changes the workload asks for (each op's own count, summed).
    embeddings_asked: int
    #: Embeddings the workers wrote (updated, deleted, merged; from the audit log).
    embeddings_written: int
    write_calls: int
    #: Seconds to write the workload into the table (before the clock starts).
    table_write_seconds: float
    #: From the poller's first read to the end of the last Chroma write.
    seconds: float
    #: Seconds of that spent inside Chroma write calls.
    chroma_seconds: float
    extra: dict[str, Any] = field(default_factory=dict)

    #: CPU seconds each process used while the workload drained (``driver``: this one).
    cpu_seconds: dict[str, float] = field(default_factory=dict)

    @property
    def worker_cpu_seconds(self) -> float:
        """Both workers' CPU (each with its pool child and the embedded Chroma in it)."""
        return worker_seconds(self.cpu_seconds)

    @property
    def worker_cpu_per_embedding(self) -> float:
        """Worker CPU seconds per embedding written (NaN-free: 0 when none was written)."""
        return self.worker_cpu_seconds / self.embeddings_written if self.embeddings_written else 0.0

    @property
    def changes_per_second(self) -> float:
        return self.changes / self.seconds if self.seconds else 0.0

    @property
    def embeddings_per_second(self) -> float:
        return self.embeddings_written / self.seconds if self.seconds else 0.0

    @property
    def table_writes_per_second(self) -> float:
        return self.changes / self.table_write_seconds if self.table_write_seconds else 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            **asdict(self),
            "changes_per_second": self.changes_per_second,
            "embeddings_per_second": self.embeddings_per_second,
            "table_writes_per_second": self.table_writes_per_second,
            "worker_cpu_seconds": self.worker_cpu_seconds,
            "worker_cpu_per_embedding": self.worker_cpu_per_embedding,
        }


def run_workload(
    stack: BenchStack,
    name: str,
    ops: list[TableOp],
    design: str = "chromasync",
    timeout: float = 300.0,
    idle_sleep: float | None = None,
) -> ThroughputResult:
    """Write ``ops``, then let the running workers and a fresh poller drain them."""
    table_seconds = stack.write(ops)
    offset = stack.audit_offset()
    poller = stack.start_poller(design, idle_sleep=idle_sleep, tag=f"-{name}")
    pids = stack.pids()
    pids["poller"] = poller.process.pid
    meter = CpuMeter(pids).start()
    began = time.monotonic()
    try:
        seen_at = stack.wait_visible(ops, timeout)
        spent = meter.stop()
        wall = time.monotonic() - began
    finally:
        poller.stop()
    return audited_result(
        name,
        design,
        ops,
        writes=[w for w in stack.audit_writes(offset) if w["end"] <= seen_at],
        table_seconds=table_seconds,
        started_at=poller.started_at,
        spent=spent,
        wall=wall,
    )


def audited_result(
    name: str,
    design: str,
    ops: list[TableOp],
    *,
    writes: list[dict[str, Any]],
    table_seconds: float,
    started_at: float,
    spent: dict[str, float],
    wall: float,
    extra: dict[str, Any] | None = None,
) -> ThroughputResult:
    """A workload's result from the workers' audit log: ``writes`` are the Chroma writes
    that made it visible, timed from ``started_at`` (wall clock) to the last one's end."""
    if not writes:
        raise RuntimeError(f"{name}: visible without a single Chroma write (nothing measured)")
    return ThroughputResult(
        name=name,
        design=design,
        changes=len(ops),
        kinds=dict(Counter(op.kind for op in ops)),
        embeddings_asked=sum(op.embeddings for op in ops),
        embeddings_written=sum(int(w["count"]) for w in writes),
        write_calls=len(writes),
        table_write_seconds=table_seconds,
        seconds=max(w["end"] for w in writes) - started_at,
        chroma_seconds=sum(w["end"] - w["start"] for w in writes),
        extra={
            **(extra or {}),
            "write_kinds": dict(Counter(w["kind"] for w in writes)),
            # Cores each process kept busy while the workload drained (1.0 = one core).
            "cpu_busy": {k: round(v / wall, 3) for k, v in spent.items()},
        },
        cpu_seconds=spent,
    )
