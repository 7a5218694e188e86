"""The benchmark's profiles and the order of its sections, in one run on one stack.

Order matters only for fairness: the sink is measured before any worker runs;
chromasync's workers run the single-embedding workload, the realistic mix and the
lag sections, then stop; the per-message workers then run alone on their own
queues; the producer's CPU figures come last, over the run's own stream records.
"""

from __future__ import annotations

import os
import platform
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from typing import Any

from benchmarks.baseline_producer import per_message_queues
from benchmarks.cost import PROFILES as COST_PROFILES
from benchmarks.cost import measure_cost
from benchmarks.cpu import CpuMeter
from benchmarks.lag import measure_lag
from benchmarks.moto_probe import probe_moto
from benchmarks.producer_cpu import capture_records, measure_producer
from benchmarks.report import BenchReport
from benchmarks.sink import measure_sink
from benchmarks.stack import BenchStack
from benchmarks.throughput import run_workload
from benchmarks.workload import WorkloadBuilder, bench_receipts, embeddings_of
from tasks.profiling import PROFILE_ENV

Echo = Callable[[str], None]


@dataclass(frozen=True)
class Profile:
    name: str
    receipts: int
    #: Receipts staged for delta merges in the mix.
    merges: int
    single_ops: int
    #: Receipts the mix's per-receipt counts are taken over.
    mix_receipts: int
    per_message_ops: int
    lag_rates: tuple[float, ...]
    lag_seconds: float
    #: Seconds of writes offered at the rate before the measured ones (their lags are
    #: not counted): a poller just started opens its connections on its first publish.
    lag_warmup: float
    #: How long to wait, after the last write, for writes still not visible (then unseen).
    lag_settle: float
    #: Stream records the producer's CPU figures run over.
    cpu_records: int
    #: Sink: embeddings written at 1,000 ids per call, and calls at 1 id per call.
    sink_embeddings: int
    sink_single_calls: int
    timeout: float


PROFILES = {
    # For the test suite: every section runs, on so little data that no figure means much.
    "smoke": Profile("smoke", 8, 1, 90, 6, 24, (50, 200), 0.4, 0.1, 10, 1000, 2000, 20, 60),
    # About three minutes on a 2-core machine, two of them the cost section.
    "quick": Profile("quick", 30, 1, 600, 20, 100, (50, 200), 4.0, 1.0, 10, 3000, 20000, 200, 180),
    # The figures BENCHMARKS.md records.
    "full": Profile(
        "full", 300, 3, 4000, 120, 400, (50, 200), 20.0, 3.0, 30, 20000, 60000, 500, 900
    ),
}


#: The per-message workers poll SQS without the default half-second pause between
#: receives (which alone would cap them at two messages a second each).
PER_MESSAGE_ENV = {"CHROMASYNC_POLLING_INTERVAL": "0.05"}


def machine() -> dict[str, Any]:
    return {
        "nproc": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "moto": version("moto"),
        "chromadb": version("chromadb"),
        "celery": version("celery"),
        "kombu": version("kombu"),
        "boto3": version("boto3"),
    }


def run_bench(
    profile: Profile,
    workdir: Path,
    redis_url: str,
    command: str,
    echo: Echo = print,
    knobs: dict[str, str] | None = None,
    idle_sleep: float | None = None,
    profile_dir: Path | None = None,
) -> BenchReport:
    """Every section on one stack; ``knobs`` (env) and ``idle_sleep`` tune the lag run.

    ``profile_dir``: chromasync's workers run under cProfile (:mod:`tasks.profiling`)
    and leave their profiles there when they stop.
    """
    started = time.monotonic()

    def say(text: str) -> None:
        echo(f"[{time.monotonic() - started:6.1f}s] {text}")

    shutil.rmtree(workdir, ignore_errors=True)
    report = BenchReport(profile.name, command, machine())
    stack = BenchStack.start(workdir, redis_url)
    try:
        receipts = bench_receipts(profile.receipts)
        items, embeddings = stack.seed(receipts)
        sizes = [embeddings_of(r) for r in receipts]
        say(
            f"seeded {len(receipts)} receipts ({min(sizes)}-{max(sizes)} embeddings each): "
            f"{items} table items, {embeddings} embeddings"
        )
        staged = stack.stage_merges(
            bench_receipts(profile.merges, first=profile.receipts), profile.receipts
        )
        builder = WorkloadBuilder(receipts)
        single = builder.single(profile.single_ops, "s")
        report.sections["moto"] = probe_moto(stack, receipts[0])
        sink = measure_sink(stack, single, profile.sink_embeddings, profile.sink_single_calls)
        report.sections["sink"] = sink.to_json()
        say(f"sink limit: {sink.embeddings_per_second:,.0f} embeddings/s at 1,000 ids per call")
        first_workload_sequence = stack.skip_stream()

        profiling = {PROFILE_ENV: str(profile_dir)} if profile_dir else {}
        stack.start_workers(extra_env=profiling or None)
        say("chromasync workers ready")
        result = run_workload(stack, "single", single, timeout=profile.timeout)
        report.sections["chromasync_single"] = result.to_json()
        say(f"chromasync single-embedding: {result.changes_per_second:,.1f} changes/s")
        merges = [
            builder.merge(spec, index, run, prefixes) for spec, index, run, prefixes in staged
        ]
        mix = builder.mix(profile.mix_receipts, edition=1, tag="m", merges=merges)
        result = run_workload(stack, "mix", mix, timeout=profile.timeout)
        report.sections["chromasync_mix"] = result.to_json()
        say(f"chromasync realistic mix: {result.embeddings_per_second:,.0f} embeddings/s")

        lags = []
        if knobs:
            stack.assembly.stop_workers()
            stack.start_workers(extra_env={**knobs, **profiling})
        poller = stack.start_poller("chromasync", idle_sleep=idle_sleep, tag="-lag")
        try:
            for rate in profile.lag_rates:
                warmup = round(rate * profile.lag_warmup)
                ops = builder.single(warmup + round(rate * profile.lag_seconds), f"l{rate:g}")
                lag = measure_lag(
                    stack,
                    ops,
                    rate,
                    warmup=warmup,
                    settle=profile.lag_settle,
                    knobs=_knob_summary(knobs, idle_sleep),
                    extra_pids={"poller": poller.process.pid},
                )
                lags.append(lag.to_json())
                say(f"lag at {rate:g}/s: p50 {lag.p50:.3f}s p95 {lag.p95:.3f}s p99 {lag.p99:.3f}s")
        finally:
            poller.stop()
        report.sections["lag"] = lags
        stack.assembly.stop_workers()

        per_message = per_message_queues(stack.settings)
        from chromasync.provision import ensure_queues

        ensure_queues(per_message)
        queues = dict(zip(stack.settings.collections, per_message.collections, strict=True))
        stack.start_workers(app="benchmarks.baseline", queues=queues, extra_env=PER_MESSAGE_ENV)
        say("per-message workers ready")
        # The per-message design updates one embedding per record (a label's word only):
        # it is done when that one is visible.
        ops = [op.probe_only() for op in builder.single(profile.per_message_ops, "p")]
        result = run_workload(stack, "per-message", ops, "per-message", timeout=profile.timeout)
        report.sections["per_message"] = result.to_json()
        say(f"per-message baseline: {result.changes_per_second:,.1f} changes/s")
        stack.assembly.stop_workers()

        streams = stack.boto("dynamodbstreams")
        arn = stack.boto("dynamodb").describe_table(TableName=stack.settings.table)["Table"][
            "LatestStreamArn"
        ]
        meter = CpuMeter(stack.pids()).start()
        records = capture_records(streams, arn, profile.cpu_records, after=first_workload_sequence)
        cpu = measure_producer(stack.settings, records)
        report.sections["producer_cpu"] = {**cpu.to_json(), "cpu_seconds": meter.stop()}
        say(
            f"producer CPU: {cpu.producer_records_per_second:,.0f} records/s, bare "
            f"TypeDeserializer loop {cpu.bare_records_per_second:,.0f} records/s"
        )
    finally:
        stack.close()
    # On a stack of its own: moto counting requests, locks in DynamoDB as deployed.
    say("AWS cost model: every kind of change through both designs, requests counted")
    report.sections["cost"] = measure_cost(
        COST_PROFILES[profile.name], workdir / "cost", redis_url, echo=say
    )
    report.sections["elapsed_seconds"] = round(time.monotonic() - started, 1)
    return report


def _knob_summary(knobs: dict[str, str] | None, idle_sleep: float | None) -> dict[str, Any]:
    from producers.poller import IDLE_SLEEP

    env = {**os.environ, **(knobs or {})}
    summary: dict[str, Any] = {
        "CHROMASYNC_POLLING_INTERVAL": env.get("CHROMASYNC_POLLING_INTERVAL", "default"),
        "CHROMASYNC_WAIT_TIME_SECONDS": env.get("CHROMASYNC_WAIT_TIME_SECONDS", "default"),
        "poller_idle_sleep": IDLE_SLEEP if idle_sleep is None else idle_sleep,
    }
    if knobs or idle_sleep is not None:
        summary["label"] = ", ".join(
            [f"{k.removeprefix('CHROMASYNC_').lower()}={v}" for k, v in (knobs or {}).items()]
            + ([f"idle_sleep={idle_sleep}"] if idle_sleep is not None else [])
        )
    return summary


def command_line() -> str:
    return "chromasync " + " ".join(sys.argv[1:]) if sys.argv else "chromasync bench"
