"""The sink's limit: raw Chroma metadata updates of the workload's own ids.

No queue, no lock, no table: ``collection.update`` on the embedded directory,
1,000 ids per call, in this process. Every design ends in these calls, so this
is the ceiling of embeddings updated per second. One id per call is measured
too: it is what a per-message design pays at best for each change.

Chroma's CPU per embedding is this process's CPU around the 1,000-id calls
(embedded Chroma runs in-process; its native threads count in the process's
CPU clock): the worker's CPU per embedding written is judged against it.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Any

from benchmarks.cpu import CpuMeter, own_cpu_seconds
from benchmarks.stack import BenchStack
from benchmarks.workload import Role, TableOp

#: Ids per call of the sink's limit (the issue's definition).
IDS_PER_CALL = 1000


@dataclass(frozen=True)
class SinkResult:
    ids_per_call: int
    embeddings: int
    calls: int
    seconds: float
    single_id_calls: int
    single_id_seconds: float
    #: This process's CPU seconds inside the 1,000-id calls (Chroma's, in-process).
    cpu_seconds: float = 0.0
    #: CPU seconds each process used during the whole section (``driver``: this one).
    section_cpu_seconds: dict[str, float] | None = None

    @property
    def chroma_cpu_per_embedding(self) -> float:
        """Chroma's own CPU seconds per embedding updated at 1,000 ids per call."""
        return self.cpu_seconds / self.embeddings if self.embeddings else 0.0

    @property
    def embeddings_per_second(self) -> float:
        return self.embeddings / self.seconds if self.seconds else 0.0

    @property
    def single_id_per_second(self) -> float:
        return self.single_id_calls / self.single_id_seconds if self.single_id_seconds else 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            **asdict(self),
            "embeddings_per_second": self.embeddings_per_second,
            "single_id_per_second": self.single_id_per_second,
            "chroma_cpu_per_embedding": self.chroma_cpu_per_embedding,
        }


def text_patch(n: int) -> dict[str, Any]:
    """The shape of metadata the worker writes for a line or word edit (text fields)."""
    return {
        "text": f"sink {n}",
        "confidence": 0.97,
        "bounding_box": '{"height":0.04,"width":0.3,"x":0.1,"y":0.2}',
        "embedding_status": "SUCCESS",
        "is_noise": False,
    }


def measure_sink(
    stack: BenchStack, ops: list[TableOp], min_embeddings: int, single_id_calls: int
) -> SinkResult:
    """Update the workload's ids (both collections) until ``min_embeddings`` are written."""
    by_role: dict[Role, list[str]] = {"lines": [], "words": []}
    for op in ops:
        for e in op.expects:
            if e.mode != "absent":
                by_role[e.role].append(e.embedding_id)
    ids = {role: sorted(set(v)) for role, v in by_role.items() if v}
    collections = {role: stack.role_collection(role) for role in ids}
    meter = CpuMeter(stack.pids()).start()
    written = calls = 0
    seconds = cpu = 0.0
    n = 0
    while written < min_embeddings:
        for role, every in ids.items():
            collection = collections[role]
            for start in range(0, len(every), IDS_PER_CALL):
                chunk = every[start : start + IDS_PER_CALL]
                metadatas = [text_patch(n) for _ in chunk]
                began, began_cpu = time.perf_counter(), own_cpu_seconds()
                collection.update(ids=chunk, metadatas=metadatas)
                cpu += own_cpu_seconds() - began_cpu
                seconds += time.perf_counter() - began
                written += len(chunk)
                calls += 1
        n += 1
    words = ids.get("words") or ids["lines"]
    single_role: Role = "words" if "words" in ids else "lines"
    began = time.perf_counter()
    for i in range(single_id_calls):
        collections[single_role].update(ids=[words[i % len(words)]], metadatas=[text_patch(-i)])
    single_seconds = time.perf_counter() - began
    return SinkResult(
        IDS_PER_CALL,
        written,
        calls,
        seconds,
        single_id_calls,
        single_seconds,
        cpu_seconds=cpu,
        section_cpu_seconds=meter.stop(),
    )
