"""End-to-end lag at a steady offered load: table write to visible in Chroma.

A writer thread puts single-embedding changes (labels, line and word edits) into
the table at a fixed rate; the main thread polls Chroma for each written value
(every ``poll_interval`` seconds, one ``get`` per collection for everything
pending) and records, per write, the time from just before the write was sent to
the moment its value was read back. The pipeline (workers and poller) runs
throughout, as in production; nothing is pre-loaded.
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from benchmarks.cpu import cpu_seconds
from benchmarks.stack import BenchStack
from benchmarks.workload import Expect, Role, TableOp


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (``q`` in 0..100); NaN for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


@dataclass(frozen=True)
class LagResult:
    offered_rate: float
    seconds: float
    writes: int
    #: Writes per second the writer managed (moto may not take the offered rate).
    achieved_rate: float
    lags: list[float] = field(repr=False)
    #: Writes not visible when the wait ended.
    unseen: int = 0
    poll_interval: float = 0.02
    knobs: dict[str, Any] = field(default_factory=dict)
    #: Cores each process kept busy during the run (1.0 = one core).
    cpu_busy: dict[str, float] = field(default_factory=dict)

    @property
    def p50(self) -> float:
        return percentile(self.lags, 50)

    @property
    def p95(self) -> float:
        return percentile(self.lags, 95)

    @property
    def p99(self) -> float:
        return percentile(self.lags, 99)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("lags")
        return {
            **data,
            "samples": len(self.lags),
            "p50": self.p50,
            "p95": self.p95,
            "p99": self.p99,
            "max": max(self.lags) if self.lags else math.nan,
        }


class _Writer(threading.Thread):
    """Writes ops at ``rate`` per second from its own boto3 session; records send times."""

    def __init__(self, stack: BenchStack, ops: list[TableOp], rate: float) -> None:
        super().__init__(name="bench-lag-writer", daemon=True)
        self.stack = stack
        self.ops = ops
        self.rate = rate
        self.sent: dict[int, float] = {}
        self.error: BaseException | None = None
        self.began = 0.0
        self.ended = 0.0

    def run(self) -> None:
        import boto3

        try:
            session = boto3.session.Session()
            table = session.resource("dynamodb", **self.stack.settings.aws.client_kwargs()).Table(
                self.stack.settings.table
            )
            self.began = time.monotonic()
            for k, op in enumerate(self.ops):
                delay = self.began + k / self.rate - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                sent = time.time()
                if op.put is not None:
                    table.put_item(Item=op.put)
                elif op.delete is not None:
                    table.delete_item(Key=op.delete)
                self.sent[k] = sent
        except BaseException as exc:  # noqa: BLE001 - reported by the caller
            self.error = exc
        finally:
            self.ended = time.monotonic()


def measure_lag(
    stack: BenchStack,
    ops: list[TableOp],
    rate: float,
    settle: float = 30.0,
    poll_interval: float = 0.02,
    knobs: dict[str, Any] | None = None,
    extra_pids: dict[str, int] | None = None,
) -> LagResult:
    """Offer ``ops`` at ``rate`` per second and time each one to visible."""
    pids = {**stack.pids(), **(extra_pids or {})}
    cpu_before = {label: cpu_seconds(pid) for label, pid in pids.items()}
    began = time.monotonic()
    writer = _Writer(stack, ops, rate)
    probes: dict[int, Expect] = {k: op.probe for k, op in enumerate(ops) if op.probe is not None}
    lags: list[float] = []
    writer.start()
    deadline: float | None = None
    while probes:
        if not writer.is_alive():
            if writer.error is not None:
                raise RuntimeError(f"lag writer failed: {writer.error}") from writer.error
            deadline = deadline or time.monotonic() + settle
            if time.monotonic() > deadline:
                break
        stack.check_workers()
        written = {k: e for k, e in probes.items() if k in writer.sent}
        by_role: dict[Role, list[str]] = {}
        for e in written.values():
            by_role.setdefault(e.role, []).append(e.embedding_id)
        found: dict[tuple[Role, str], dict[str, Any]] = {}
        for role, ids in by_role.items():
            for eid, meta in stack.metadata(role, ids).items():
                found[(role, eid)] = meta
        seen = time.time()
        for k, e in written.items():
            if e.holds(found.get((e.role, e.embedding_id))):
                lags.append(seen - writer.sent[k])
                del probes[k]
        time.sleep(poll_interval)
    writer.join()
    wall = time.monotonic() - began
    busy = {k: round((cpu_seconds(pid) - cpu_before[k]) / wall, 3) for k, pid in pids.items()}
    wrote_for = max(writer.ended - writer.began, 1e-9)
    return LagResult(
        offered_rate=rate,
        seconds=len(ops) / rate,
        writes=len(writer.sent),
        achieved_rate=len(writer.sent) / wrote_for,
        lags=lags,
        unseen=len(probes),
        poll_interval=poll_interval,
        knobs=dict(knobs or {}),
        cpu_busy=busy,
    )
