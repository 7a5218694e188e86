"""Throughput with the source table on a server that serves reads in parallel (dynalite).

``python -m benchmarks.parallel_table [--quick|--smoke] --redis-url URL [--json PATH]``

Why: on moto every DynamoDB request waits for the one before it (BENCHMARKS.md,
"What bounds each figure"), so ``chromasync bench`` measures moto's reads, not the
worker. Here the source table is a dynalite (:mod:`benchmarks.table_standin`: one
Node process, requests in flight together, a fraction of moto's CPU per read) and
everything else is as in ``chromasync bench``: moto for SQS and S3, Redis for the
lock, the same embedded Chroma, chromasync's workers (``celery -A tasks``) and the
per-message baseline's (``celery -A benchmarks.baseline``), both reading the table
at dynalite through ``CHROMASYNC_TABLE_ENDPOINT_URL``.

dynalite has no streams, so the pipeline is fed as on AWS: each workload write
becomes the stream record DynamoDB would send (:mod:`benchmarks.stream_feed`) and
the records go, 1,000 per invocation, to :func:`producers.lambda_handler.handler` in
this process (the per-message design's records to its own producer). The clock runs
from the first invocation to the end of the last Chroma write that made the workload
visible (the workers' audit log), as :func:`benchmarks.throughput.run_workload` counts
from the poller's first read. The table writes themselves are not timed.

The same workloads then run with the table on moto, fed the same way, in the same
run (``--no-moto`` skips them): only the table's server differs. Both tables hold
the same items throughout (every write is mirrored to the other table).

Profiles are ``chromasync bench``'s (:data:`benchmarks.run.PROFILES`); the lag
sections and the producer's CPU figures are not run here.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.baseline_producer import PerMessageProcessor, per_message_queues
from benchmarks.cpu import CpuMeter
from benchmarks.report import WORKER_CPU_LIMIT
from benchmarks.run import PER_MESSAGE_ENV, PROFILES, Profile, machine
from benchmarks.sink import measure_sink
from benchmarks.stack import BenchStack
from benchmarks.stream_feed import RecordingWriter, feed_lambda, feed_processor
from benchmarks.table_probe import create_table
from benchmarks.table_standin import DYNALITE_VERSION, DynaliteServer
from benchmarks.throughput import ThroughputResult, audited_result
from benchmarks.workload import TableOp, WorkloadBuilder, bench_receipts, embeddings_of
from chromasync.seed import seed_table, table_items

Echo = Callable[[str], None]

#: The setting the workers read the table's endpoint from (``AwsSettings.table_endpoint_url``).
TABLE_ENDPOINT_ENV = "CHROMASYNC_TABLE_ENDPOINT_URL"
#: Where the table is, by the name the figures carry.
TABLES = ("dynalite", "moto")
#: Targets (issue 7): single-embedding changes/s ≥ 20 × per-message; embeddings/s ≥ 0.5 × sink.
PER_MESSAGE_TARGET = 20.0
SINK_TARGET = 0.5
#: Default Redis URL: db 7, the bench runs' (tests use 10, 14, 15).
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/7"


class ParallelTableStack(BenchStack):
    """A :class:`BenchStack` whose source table is also in a dynalite, the primary one.

    :attr:`table` (the seed helpers' and :meth:`BenchStack.stage_merges`' table) is
    dynalite's; the moto table provisioned with the stack holds the same items.
    """

    dynalite: DynaliteServer

    @classmethod
    def start_with(cls, workdir: Path, redis_url: str) -> ParallelTableStack:
        workdir.mkdir(parents=True, exist_ok=True)
        dynalite = DynaliteServer.start(log=workdir / "dynalite.log")
        try:
            stack = cls.start(workdir, redis_url)
        except BaseException:
            dynalite.stop()
            raise
        assert isinstance(stack, ParallelTableStack)  # BenchStack.start builds ``cls``
        stack.dynalite = dynalite
        create_table(dynalite.url, stack.settings.table)
        return stack

    def client(self, where: str) -> Any:
        """A low-level DynamoDB client of the table at ``where`` (dynalite or moto)."""
        import boto3

        kwargs = self.settings.aws.client_kwargs()
        if where == "dynalite":
            kwargs["endpoint_url"] = self.dynalite.url
        return boto3.client("dynamodb", **kwargs)

    def table_of(self, where: str) -> Any:
        import boto3

        kwargs = self.settings.aws.client_kwargs()
        if where == "dynalite":
            kwargs["endpoint_url"] = self.dynalite.url
        return boto3.resource("dynamodb", **kwargs).Table(self.settings.table)

    @property
    def table(self) -> Any:
        if self._table is None:
            self._table = self.table_of("dynalite")
        return self._table

    def mirror(self, items: Sequence[dict[str, Any]]) -> None:
        """The same items into moto's table (what :attr:`table` got)."""
        with self.table_of("moto").batch_writer(overwrite_by_pkeys=["PK", "SK"]) as batch:
            for item in items:
                batch.put_item(Item=item)

    def worker_env(self, where: str) -> dict[str, str]:
        """The workers' table endpoint: dynalite's URL, or empty (the table with SQS: moto)."""
        return {TABLE_ENDPOINT_ENV: self.dynalite.url if where == "dynalite" else ""}

    def pids(self) -> dict[str, int]:
        return {**super().pids(), "dynalite": self.dynalite.process.pid}

    def close(self) -> None:
        try:
            super().close()
        finally:
            if getattr(self, "dynalite", None) is not None:
                self.dynalite.stop()


def write_recorded(stack: ParallelTableStack, ops: list[TableOp], where: str) -> list[Any]:
    """Write ``ops`` to the table at ``where`` (its stream records kept), then to the other."""
    other = "moto" if where == "dynalite" else "dynalite"
    arn = f"arn:aws:dynamodb:{stack.settings.aws.region}:000000000000:table/"
    arn += f"{stack.settings.table}/stream/{where}"
    writer = RecordingWriter(
        stack.client(where), stack.settings.table, arn, stack.settings.aws.region
    )
    records = writer.write(ops)
    with stack.table_of(other).batch_writer(overwrite_by_pkeys=["PK", "SK"]) as batch:
        for op in ops:
            if op.put is not None:
                batch.put_item(Item=op.put)
            elif op.delete is not None:
                batch.delete_item(Key=op.delete)
    return records


#: Messages of a queue not yet deleted: waiting, received (in flight) and delayed (retries).
QUEUE_COUNTS = (
    "ApproximateNumberOfMessages",
    "ApproximateNumberOfMessagesNotVisible",
    "ApproximateNumberOfMessagesDelayed",
)
#: Seconds between two looks at the queues while a workload drains.
DRAIN_POLL = 0.2


def wait_drained(
    stack: ParallelTableStack, queues: Sequence[str], ops: list[TableOp], timeout: float
) -> float:
    """Wait until the workers' queues hold nothing, then until every op is visible in
    Chroma; returns the wall-clock time it was all seen.

    Why not :meth:`BenchStack.wait_visible` alone: it reads every pending embedding
    from Chroma every 0.25 s, in this process, and on 4,000 changes that took
    0.44 of a core (first full run, 2026-12-05) from a 2-core machine the pipeline
    needs. Counting the queues costs moto a GetQueueAttributes per queue. The end of
    the measurement comes from the audit log either way, so looking later only moves
    the moment the run stops, not the figure.
    """
    sqs = stack.boto("sqs")
    urls = [sqs.get_queue_url(QueueName=name)["QueueUrl"] for name in queues]
    deadline = time.monotonic() + timeout
    while True:
        stack.assembly.check_workers()
        left = 0
        for url in urls:
            got = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=list(QUEUE_COUNTS))
            left += sum(int(got["Attributes"].get(name, 0)) for name in QUEUE_COUNTS)
        if not left:
            break
        if time.monotonic() > deadline:
            raise TimeoutError(f"{left} messages still queued after {timeout}s")
        time.sleep(DRAIN_POLL)
    return stack.wait_visible(ops, max(1.0, deadline - time.monotonic()))


def run_fed(
    stack: ParallelTableStack,
    name: str,
    ops: list[TableOp],
    where: str,
    feed: Callable[[list[Any]], int],
    queues: Sequence[str],
    design: str = "chromasync",
    timeout: float = 300.0,
) -> ThroughputResult:
    """Write ``ops`` (untimed), feed their records to the running workers; the result.

    As :func:`benchmarks.throughput.run_workload`, with the producer fed here instead of
    a poller process: the clock starts just before the first batch is handed over.
    ``queues``: the SQS queues the workers consume (:func:`wait_drained`).
    """
    began_write = time.perf_counter()
    records = write_recorded(stack, ops, where)
    table_seconds = time.perf_counter() - began_write
    offset = stack.audit_offset()
    meter = CpuMeter(stack.pids()).start()
    started_at, began = time.time(), time.monotonic()
    feed(records)
    fed_seconds = time.monotonic() - began
    seen_at = wait_drained(stack, queues, ops, timeout)
    spent = meter.stop()
    wall = time.monotonic() - began
    return audited_result(
        f"{name} ({where})",
        design,
        ops,
        writes=[w for w in stack.audit_writes(offset) if w["end"] <= seen_at],
        table_seconds=table_seconds,
        started_at=started_at,
        spent=spent,
        wall=wall,
        extra={
            "table": where,
            "records": len(records),
            "producer_seconds": round(fed_seconds, 3),
        },
    )


@dataclass
class Phases:
    """What one table's phases need: the builder (shared, so no target repeats) and merges."""

    builder: WorkloadBuilder
    staged: dict[str, list[tuple[Any, int, str, dict[str, str]]]]


def run_table(
    stack: ParallelTableStack,
    where: str,
    profile: Profile,
    phases: Phases,
    say: Echo,
) -> dict[str, Any]:
    """chromasync single and mix, then the per-message baseline, with the table at ``where``."""
    sections: dict[str, Any] = {}
    builder = phases.builder
    stack.start_workers(extra_env=stack.worker_env(where))
    say(f"[{where}] chromasync workers ready")
    settings = stack.settings
    queues = [settings.sqs_queue_name(c) for c in settings.collections]
    try:
        single = builder.single(profile.single_ops, f"s{where[0]}")
        result = run_fed(
            stack, "single", single, where, feed_lambda, queues, timeout=profile.timeout
        )
        sections["chromasync_single"] = result.to_json()
        say(f"[{where}] chromasync single-embedding: {result.changes_per_second:,.1f} changes/s")
        merges = [builder.merge(*staged) for staged in phases.staged[where]]
        mix = builder.mix(profile.mix_receipts, edition=TABLES.index(where) + 1,
                          tag=f"m{where[0]}", merges=merges)  # fmt: skip
        result = run_fed(stack, "mix", mix, where, feed_lambda, queues, timeout=profile.timeout)
        sections["chromasync_mix"] = result.to_json()
        say(f"[{where}] chromasync realistic mix: {result.embeddings_per_second:,.0f} embeddings/s")
    finally:
        stack.assembly.stop_workers()

    from chromasync.provision import ensure_queues
    from producers.publishing import Publisher

    queues_settings = per_message_queues(stack.settings)
    ensure_queues(queues_settings)
    pm_queues = dict(zip(stack.settings.collections, queues_settings.collections, strict=True))
    env = {**PER_MESSAGE_ENV, **stack.worker_env(where)}
    stack.start_workers(app="benchmarks.baseline", queues=pm_queues, extra_env=env)
    say(f"[{where}] per-message workers ready")
    try:
        processor = PerMessageProcessor(stack.settings, queues_settings, Publisher(stack.settings))
        ops = [op.probe_only() for op in builder.single(profile.per_message_ops, f"p{where[0]}")]
        result = run_fed(
            stack,
            "per-message",
            ops,
            where,
            lambda records: feed_processor(processor, records),
            [queues_settings.sqs_queue_name(c) for c in queues_settings.collections],
            design="per-message",
            timeout=profile.timeout,
        )
        sections["per_message"] = result.to_json()
        say(f"[{where}] per-message baseline: {result.changes_per_second:,.1f} changes/s")
    finally:
        stack.assembly.stop_workers()
    return sections


def ratios(sections: dict[str, Any], sink: dict[str, Any] | None) -> dict[str, float]:
    """The targets' ratios: single ÷ per-message (changes/s); single and mix ÷ sink;
    the workers' CPU per embedding ÷ Chroma's (the sink's, at 1,000 ids per call)."""
    single = sections["chromasync_single"]
    out = {
        "single_vs_per_message": single["changes_per_second"]
        / sections["per_message"]["changes_per_second"]
    }
    if sink is not None:
        limit = sink["embeddings_per_second"]
        out["single_vs_sink"] = single["embeddings_per_second"] / limit
        out["mix_vs_sink"] = sections["chromasync_mix"]["embeddings_per_second"] / limit
        chroma = sink["chroma_cpu_per_embedding"]
        for key, name in (("chromasync_single", "single"), ("chromasync_mix", "mix")):
            worker = sections[key].get("worker_cpu_per_embedding", math.nan)
            out[f"{name}_worker_cpu_vs_chroma"] = worker / chroma if chroma else math.nan
    return out


def run(
    profile: Profile,
    workdir: Path,
    redis_url: str,
    tables: Sequence[str] = TABLES,
    echo: Echo = print,
    command: str | None = None,
) -> dict[str, Any]:
    """Every section on one stack; the report as JSON-ready dicts."""
    import shutil

    started = time.monotonic()

    def say(text: str) -> None:
        echo(f"[{time.monotonic() - started:6.1f}s] {text}")

    shutil.rmtree(workdir, ignore_errors=True)
    report: dict[str, Any] = {"profile": profile.name, "command": command or command_line()}
    report["machine"] = {**machine(), "dynalite": DYNALITE_VERSION}
    stack = ParallelTableStack.start_with(workdir, redis_url)
    try:
        # The Lambda handler in this process builds its settings from the environment.
        os.environ.update(stack.env)
        from producers import defaults

        defaults.reset()
        receipts = bench_receipts(profile.receipts)
        items, embeddings = stack.seed(receipts)  # dynalite's table and Chroma
        seed_table(stack.table_of("moto"), receipts)
        sizes = [embeddings_of(r) for r in receipts]
        say(
            f"seeded {len(receipts)} receipts ({min(sizes)}-{max(sizes)} embeddings each): "
            f"{items} table items in dynalite and moto, {embeddings} embeddings"
        )
        staged: dict[str, list[tuple[Any, int, str, dict[str, str]]]] = {}
        first = profile.receipts
        for where in tables:
            specs = bench_receipts(profile.merges, first=first)
            staged[where] = stack.stage_merges(specs, first)  # into dynalite's table
            stack.mirror([i for n, s in enumerate(specs) for i in table_items(s, first + n)])
            first += profile.merges
        phases = Phases(WorkloadBuilder(receipts), staged)

        sink_ops = phases.builder.single(profile.single_ops, "sink")
        sink = measure_sink(stack, sink_ops, profile.sink_embeddings, profile.sink_single_calls)
        report["sink"] = sink.to_json()
        say(f"sink limit: {sink.embeddings_per_second:,.0f} embeddings/s at 1,000 ids per call")
        for where in tables:
            sections = run_table(stack, where, profile, phases, say)
            sections["ratios"] = ratios(sections, report["sink"])
            report[where] = sections
    finally:
        stack.close()
    report["elapsed_seconds"] = round(time.monotonic() - started, 1)
    return report


# --- the printed report ---------------------------------------------------------------


def _cpu_line(section: dict[str, Any]) -> str:
    spent = section["cpu_seconds"]
    return ", ".join(f"{k} {v:.2f}" for k, v in sorted(spent.items()))


def format_report(report: dict[str, Any]) -> str:
    sink = report["sink"]
    lines = [
        f"parallel table benchmark ({report['profile']}), {report['elapsed_seconds']} s: "
        f"{report['command']}",
        f"sink limit: {sink['embeddings_per_second']:,.0f} embeddings/s (1,000 ids per call), "
        f"{sink['single_id_per_second']:,.0f}/s at 1 id per call",
        "",
        f"{'table':<10}{'workload / design':<28}{'changes':>8}{'seconds':>9}"
        f"{'changes/s':>11}{'embeddings/s':>14}",
    ]
    names = (
        ("chromasync_single", "chromasync single"),
        ("chromasync_mix", "chromasync mix"),
        ("per_message", "per-message"),
    )
    for where in TABLES:
        if where not in report:
            continue
        for key, label in names:
            s = report[where][key]
            lines.append(
                f"{where:<10}{label:<28}{s['changes']:>8}{s['seconds']:>9.2f}"
                f"{s['changes_per_second']:>11.1f}{s['embeddings_per_second']:>14,.0f}"
            )
    lines += ["", "targets (ratios within this run):"]
    for where in TABLES:
        if where not in report:
            continue
        r = report[where]["ratios"]
        per, single, mix = r["single_vs_per_message"], r["single_vs_sink"], r["mix_vs_sink"]
        lines.append(
            f"  {where}: single ÷ per-message {per:.1f} × (≥ {PER_MESSAGE_TARGET:g} ×: "
            f"{_met(per, PER_MESSAGE_TARGET)}); single ÷ sink {single:.2f} × (≥ "
            f"{SINK_TARGET:g} ×: {_met(single, SINK_TARGET)}); mix ÷ sink {mix:.2f} × "
            f"({_met(mix, SINK_TARGET)})"
        )
        for name in ("single", "mix"):
            cpu = r.get(f"{name}_worker_cpu_vs_chroma", math.nan)
            worker = report[where][f"chromasync_{name}"].get("worker_cpu_per_embedding", math.nan)
            lines.append(
                f"  {where}: {name} worker CPU per embedding {worker * 1e6:,.0f} µs = "
                f"{cpu:.2f} × Chroma's {sink['chroma_cpu_per_embedding'] * 1e6:,.0f} µs "
                f"(≤ {WORKER_CPU_LIMIT:g} ×: {'met' if cpu <= WORKER_CPU_LIMIT else 'not met'})"
            )
    lines += ["", "CPU seconds per process while each workload drained:"]
    for where in TABLES:
        if where not in report:
            continue
        for key, label in names:
            s = report[where][key]
            busy = ", ".join(f"{k} {v:.2f}" for k, v in sorted(s["extra"]["cpu_busy"].items()))
            lines.append(f"  {where} {label}: {_cpu_line(s)}  (cores busy: {busy})")
    return "\n".join(lines)


def _met(value: float, target: float) -> str:
    return "met" if value >= target else "not met"


def command_line() -> str:
    return "python -m benchmarks.parallel_table " + " ".join(sys.argv[1:])


def main(argv: Sequence[str] | None = None, command: str | None = None) -> int:
    """``command``: the command line the report names (``chromasync bench --table ...``)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--quick", action="store_true", help="chromasync bench's quick profile")
    group.add_argument("--smoke", action="store_true", help="every section, tiny data")
    parser.add_argument("--redis-url", default=DEFAULT_REDIS_URL)
    parser.add_argument("--workdir", type=Path, default=Path(".chromasync/parallel-table"))
    parser.add_argument("--json", type=Path, default=None, help="also write the report here")
    parser.add_argument(
        "--no-moto", action="store_true", help="skip the same workloads with the table on moto"
    )
    args = parser.parse_args(argv)
    profile = PROFILES["smoke" if args.smoke else "quick" if args.quick else "full"]
    tables = ("dynalite",) if args.no_moto else TABLES
    echo = lambda line: print(line, flush=True)  # noqa: E731 - progress as it happens
    report = run(profile, args.workdir.resolve(), args.redis_url, tables, echo, command)
    print(format_report(report))
    path = args.json or args.workdir / f"parallel-table-{profile.name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2, default=str))
    print(f"\nJSON: {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
