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

from benchmarks.cpu import CpuMeter
from benchmarks.stack import BenchStack
from benchmarks.workload import Expect, Role, TableOp

#: Seconds between the probes that look in Chroma for written values. A lag is
#: measured to the probe that saw it, so a coarser probe can only overstate it (by
#: half the interval on average). The benchmark process shares the machine with what
#: it measures: with 20 ms probes it used 0.59 of a core (writers and probes), with
#: 50 ms 0.44 (``chromasync bench --quick``, 50 writes/s, 2 cores).
PROBE_INTERVAL = 0.05


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
    poll_interval: float = PROBE_INTERVAL
    knobs: dict[str, Any] = field(default_factory=dict)
    #: Cores each process kept busy during the run (1.0 = one core); ``driver`` is the
    #: benchmark's own process (its writer threads and probes).
    cpu_busy: dict[str, float] = field(default_factory=dict)
    #: CPU seconds each process used during the run (same labels).
    cpu_seconds: dict[str, float] = field(default_factory=dict)
    #: Leading writes offered at the rate whose lags are not counted.
    warmup: int = 0

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


#: Writer threads that share the offered load. One thread cannot offer 50 writes/s
#: when a PutItem takes longer than 20 ms (moto under load does), so write ``k`` is
#: sent by thread ``k % WRITER_THREADS`` at ``start + k / rate``.
WRITER_THREADS = 8


class _Writer(threading.Thread):
    """Writes its share of the ops on schedule from its own boto3 session; records send times."""

    def __init__(
        self,
        stack: BenchStack,
        ops: list[TableOp],
        rate: float,
        began: float,
        share: range,
        sent: dict[int, float],
    ) -> None:
        super().__init__(name=f"bench-lag-writer-{share.start}", daemon=True)
        self.stack = stack
        self.ops = ops
        self.rate = rate
        self.began = began
        self.share = share
        self.sent = sent  # shared by the writers; one key per write
        self.error: BaseException | None = None
        self.ended = began

    def run(self) -> None:
        import boto3

        try:
            session = boto3.session.Session()
            table = session.resource("dynamodb", **self.stack.settings.aws.client_kwargs()).Table(
                self.stack.settings.table
            )
            for k in self.share:
                op = self.ops[k]
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
    poll_interval: float = PROBE_INTERVAL,
    knobs: dict[str, Any] | None = None,
    extra_pids: dict[str, int] | None = None,
    warmup: int = 0,
) -> LagResult:
    """Offer ``ops`` at ``rate`` per second and time each one to visible.

    The first ``warmup`` writes are offered like the rest and awaited, but their
    lags are not counted: the figures are for a steady load, not a start-up.
    """
    pids = {**stack.pids(), **(extra_pids or {})}
    meter = CpuMeter(pids).start()
    began = time.monotonic()
    sent: dict[int, float] = {}
    start = began + 0.1  # every writer thread running before the first write is due
    writers = [
        _Writer(stack, ops, rate, start, range(i, len(ops), WRITER_THREADS), sent)
        for i in range(WRITER_THREADS)
    ]
    probes: dict[int, Expect] = {k: op.probe for k, op in enumerate(ops) if op.probe is not None}
    lags: list[float] = []
    for writer in writers:
        writer.start()
    deadline: float | None = None
    while probes:
        failed = next((w.error for w in writers if w.error is not None), None)
        if failed is not None:
            raise RuntimeError(f"lag writer failed: {failed}") from failed
        if not any(w.is_alive() for w in writers):
            deadline = deadline or time.monotonic() + settle
            if time.monotonic() > deadline:
                break
        stack.assembly.check_workers()
        written = {k: e for k, e in probes.items() if k in sent}
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
                if k >= warmup:
                    lags.append(seen - sent[k])
                del probes[k]
        time.sleep(poll_interval)
    for writer in writers:
        writer.join()
    spent = meter.stop()
    wall = time.monotonic() - began
    busy = {k: round(v / wall, 3) for k, v in spent.items()}
    wrote_for = max(max(w.ended for w in writers) - start, 1e-9)
    return LagResult(
        offered_rate=rate,
        seconds=(len(ops) - warmup) / rate,
        writes=len(sent) - warmup,
        achieved_rate=len(sent) / wrote_for,
        lags=lags,
        unseen=len(probes),
        poll_interval=poll_interval,
        knobs=dict(knobs or {}),
        cpu_busy=busy,
        cpu_seconds=spent,
        warmup=warmup,
    )
