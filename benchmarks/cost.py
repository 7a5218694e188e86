"""The AWS cost model: requests per 1,000 changes of each kind, measured, and their price.

``python -m benchmarks.cost [--quick|--smoke]`` starts its own stack (moto counting
requests, :mod:`chromasync.requestcount`), then for each kind of change the benchmark
workloads make (:mod:`benchmarks.workload`) runs a batch of that kind alone through
chromasync (its workers) and through the per-message design (its workers,
:mod:`benchmarks.baseline`), and prints what AWS would bill per 1,000 changes and
in dollars per million changes (:mod:`benchmarks.prices`).

How one batch is measured: the changes are written to the table (not counted: the
application's own writes, the same in both designs), their stream records read
(not counted: a Lambda trigger's GetRecords are free), the counter zeroed; then the
producer (:class:`~producers.pipeline.StreamProcessor`, as the Lambda handler runs it,
or the per-message producer) processes the records in batches of the event source
mapping's ``BatchSize`` (read from ``deploy/cloudformation.yaml``), in this process,
timed; then the workers apply them and the run waits until every change is visible
in Chroma and every message sent has been deleted. Everything moto answered in
between is the batch's cost. The lock table is DynamoDB's (``dynamodb://``, as the
deployment has it), so lock writes are counted; receives that found nothing are
counted apart: a worker makes them whatever the load (an idle cost per queue).

Lambda: invocations = records / ``BatchSize`` (a full batch each: a backlog, or a
rate of at least ``BatchSize`` per batching window); GB-seconds = the producer's
measured seconds here × the function's ``MemorySize``. Worker compute is not priced:
it is the same EC2/ECS capacity in both designs.
"""

from __future__ import annotations

import argparse
import re
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from benchmarks.baseline_producer import PerMessageProcessor, per_message_queues
from benchmarks.prices import (
    PRICES,
    PRICES_DATE,
    PRICES_REGION,
    Usage,
    dollars_per_million_changes,
    idle_receives_per_month,
    per_thousand,
)
from benchmarks.producer_cpu import capture_records
from benchmarks.stack import BenchStack
from benchmarks.workload import TableOp, WorkloadBuilder, bench_receipts
from producers.pipeline import StreamProcessor
from producers.publishing import Publisher, producer_app

Echo = Callable[[str], None]

#: Kinds of change, in the order they run (deletions last: they take words away).
KINDS = ("label", "line_edit", "word_edit", "merchant", "merge", "delete_word")
#: Kinds the per-message design handles (one embedding per record); the others it cannot
#: express: a merchant edit or a merge changes every embedding of a receipt, and it
#: updates, never deletes.
PER_MESSAGE_KINDS = ("label", "line_edit", "word_edit")
CLOUDFORMATION = Path(__file__).resolve().parents[1] / "deploy" / "cloudformation.yaml"
#: The per-message workers poll without a pause, as in the throughput benchmark.
PER_MESSAGE_ENV = {"CHROMASYNC_POLLING_INTERVAL": "0.05"}
#: Seconds to wait, after the last change is visible, for its message to be deleted.
ACK_TIMEOUT = 30.0


@dataclass(frozen=True)
class CostProfile:
    name: str
    receipts: int
    #: Changes per batch of each kind (chromasync); the per-message design runs
    #: ``per_message`` of each of its kinds (its cost is linear: one message per record).
    changes: Mapping[str, int]
    per_message: int
    timeout: float


PROFILES = {
    "smoke": CostProfile(
        "smoke",
        8,
        {
            "label": 12,
            "line_edit": 12,
            "word_edit": 12,
            "merchant": 2,
            "merge": 1,
            "delete_word": 6,
        },
        6,
        60,
    ),
    "quick": CostProfile(
        "quick",
        40,
        {
            "label": 300,
            "line_edit": 300,
            "word_edit": 300,
            "merchant": 10,
            "merge": 2,
            "delete_word": 100,
        },
        100,
        180,
    ),
    # Batches of the event source mapping's 1,000 records for the one-embedding kinds.
    "full": CostProfile(
        "full",
        80,
        {
            "label": 1000,
            "line_edit": 1000,
            "word_edit": 1000,
            "merchant": 40,
            "merge": 3,
            "delete_word": 300,
        },
        300,
        600,
    ),
}


@dataclass(frozen=True)
class LambdaSettings:
    """The producer function's event source mapping and memory, as deployed."""

    batch_size: int
    memory_mb: int

    @classmethod
    def from_cloudformation(cls, path: Path = CLOUDFORMATION) -> LambdaSettings:
        text = path.read_text()
        mapping = re.search(r"ProducerEventSourceMapping:.*?BatchSize:\s*(\d+)", text, re.S)
        function = re.search(r"ProducerFunction:.*?MemorySize:\s*(\d+)", text, re.S)
        if mapping is None or function is None:
            raise ValueError(f"no BatchSize or MemorySize of the producer in {path}")
        return cls(int(mapping.group(1)), int(function.group(1)))


@dataclass
class KindCost:
    """One batch of one kind through one design: what AWS would bill for it."""

    kind: str
    design: str
    #: Stream records of the batch (one per change).
    changes: int
    producer_seconds: float
    #: Requests per 1,000 changes by "service operation" (billed requests), and the
    #: DynamoDB units by "dynamodb operation table-role".
    requests: dict[str, float] = field(default_factory=dict)
    read_units: dict[str, float] = field(default_factory=dict)
    write_units: dict[str, float] = field(default_factory=dict)
    #: SQS task messages sent per 1,000 changes, and their mean size in bytes.
    messages: float = 0.0
    message_bytes: float = 0.0
    #: Receives that found nothing during the batch (time-based; not priced per change).
    empty_receives: int = 0
    usage: Usage = field(default_factory=Usage)

    @property
    def dollars(self) -> dict[str, float]:
        return dollars_per_million_changes(self.usage)

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "dollars_per_million_changes": self.dollars}


def _role(resource: str, stack: BenchStack) -> str:
    """A table's part: the source table, the lock table, or another."""
    if resource == stack.settings.table:
        return "source"
    return "locks" if "lock" in resource else resource


def tally(
    entries: Sequence[Mapping[str, Any]],
    stack: BenchStack,
    kind: str,
    design: str,
    changes: int,
    producer_seconds: float,
    lam: LambdaSettings,
) -> KindCost:
    """A :class:`KindCost` from the counter's entries for one batch."""
    requests: dict[str, float] = {}
    reads: dict[str, float] = {}
    writes: dict[str, float] = {}
    sent = sent_bytes = empty = 0
    s3_put = s3_get = 0.0
    for e in entries:
        service, operation = str(e["service"]), str(e["operation"])
        if service == "dynamodbstreams":
            continue  # GetRecords by a Lambda trigger are free (none are made here anyway)
        billed = float(e["billed_requests"]) - float(e["empty"])
        empty += int(e["empty"])
        name = f"{service} {operation}"
        if billed:
            requests[name] = requests.get(name, 0.0) + billed
        if service == "dynamodb":
            part = f"{operation} {_role(str(e['resource']), stack)}"
            if e["read_units"]:
                reads[part] = reads.get(part, 0.0) + float(e["read_units"])
            if e["write_units"]:
                writes[part] = writes.get(part, 0.0) + float(e["write_units"])
        if service == "sqs" and operation in ("SendMessage", "SendMessageBatch"):
            sent += int(e["messages"])
            sent_bytes += int(e["payload_bytes"])
        if service == "s3" and not operation.startswith("DELETE"):
            listing = operation == "GET bucket"
            if operation.startswith(("PUT", "POST")) or listing:
                s3_put += billed
            else:
                s3_get += billed
    scale = 1000.0 / changes if changes else 0.0
    sqs = sum(v for k, v in requests.items() if k.startswith("sqs "))
    usage = Usage(
        dynamodb_read_units=sum(reads.values()) * scale,
        dynamodb_write_units=sum(writes.values()) * scale,
        sqs_requests=sqs * scale,
        lambda_invocations=1000.0 / lam.batch_size,
        lambda_gb_seconds=producer_seconds * scale * lam.memory_mb / 1024,
        s3_put_requests=s3_put * scale,
        s3_get_requests=s3_get * scale,
    )
    return KindCost(
        kind=kind,
        design=design,
        changes=changes,
        producer_seconds=producer_seconds,
        requests=per_thousand(requests, changes),
        read_units=per_thousand(reads, changes),
        write_units=per_thousand(writes, changes),
        messages=sent * scale,
        message_bytes=sent_bytes / sent if sent else 0.0,
        empty_receives=empty,
        usage=usage,
    )


class CostRun:
    """One stack, counting; runs batches of one kind through one design at a time."""

    def __init__(self, stack: BenchStack, lam: LambdaSettings, echo: Echo = print) -> None:
        assert stack.moto is not None
        self.stack = stack
        self.moto = stack.moto
        self.lam = lam
        self.echo = echo
        self.streams = stack.boto("dynamodbstreams")
        self.arn = stack.boto("dynamodb").describe_table(TableName=stack.settings.table)["Table"][
            "LatestStreamArn"
        ]
        self.position = stack.skip_stream()

    def new_records(self) -> list[dict[str, Any]]:
        records = capture_records(self.streams, self.arn, 10**7, after=self.position)
        if records:
            self.position = records[-1]["dynamodb"]["SequenceNumber"]
        return records

    def processor(self, design: str) -> StreamProcessor:
        settings = self.stack.settings
        publisher = Publisher(settings, producer_app(self.stack.env))
        if design == "per-message":
            return PerMessageProcessor(settings, per_message_queues(settings), publisher)
        return StreamProcessor(settings, publisher)

    def run(self, kind: str, design: str, ops: list[TableOp], timeout: float) -> KindCost:
        stack = self.stack
        stack.write(ops)
        records = self.new_records()
        processor = self.processor(design)
        self.moto.requests(reset=True)
        started = time.perf_counter()
        for start in range(0, len(records), self.lam.batch_size):
            report = processor.process(records[start : start + self.lam.batch_size])
            if report.error:
                raise RuntimeError(f"{design} producer, {kind}: {report.error}")
        seconds = time.perf_counter() - started
        produced = self.moto.requests(reset=True)["entries"]
        sent = sum(
            int(e["messages"])
            for e in produced
            if e["service"] == "sqs" and str(e["operation"]).startswith("SendMessage")
        )
        expected = [op.probe_only() for op in ops] if design == "per-message" else ops
        stack.wait_visible(expected, timeout)
        applied = self._wait_deleted(sent)
        cost = tally(produced + applied, stack, kind, design, len(records), seconds, self.lam)
        self.echo(
            f"{design:11} {kind:11} {len(records):5} changes: "
            f"${cost.dollars['total']:.4f} per million changes"
        )
        return cost

    def _wait_deleted(self, sent: int) -> list[dict[str, Any]]:
        """The counts once every message sent has been deleted (its task done), zeroed."""
        deadline = time.monotonic() + ACK_TIMEOUT
        while True:
            entries = self.moto.requests()["entries"]
            deleted = sum(
                int(e["messages"])
                for e in entries
                if e["service"] == "sqs" and str(e["operation"]).startswith("DeleteMessage")
            )
            if deleted >= sent or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        return list(self.moto.requests(reset=True)["entries"])


def workloads(
    builder: WorkloadBuilder, profile: CostProfile, staged: list[Any]
) -> dict[str, list[TableOp]]:
    """A batch of each kind, over distinct targets (the single workload's draws)."""
    out: dict[str, list[TableOp]] = {}
    single = max(profile.changes[k] for k in PER_MESSAGE_KINDS)
    drawn = builder.single(3 * single, "c")
    for kind in PER_MESSAGE_KINDS:
        out[kind] = [op for op in drawn if op.kind == kind][: profile.changes[kind]]
    count = min(profile.changes["merchant"], len(builder.receipts))
    out["merchant"] = [builder.merchant(i, edition=2) for i in range(count)]
    out["merge"] = [builder.merge(spec, index, run, pre) for spec, index, run, pre in staged]
    words = [
        (i, lid, wid)
        for i in reversed(range(len(builder.receipts)))
        for lid, wid in builder.receipts[i].word_keys()
    ]
    out["delete_word"] = [builder.delete_word(*w) for w in words[: profile.changes["delete_word"]]]
    return out


def measure_cost(
    profile: CostProfile, workdir: Path, redis_url: str, echo: Echo = print
) -> dict[str, Any]:
    """Every kind through both designs on a stack of its own; the ``cost`` section's JSON."""
    from chromasync.core.celery_settings import celery_settings
    from chromasync.provision import ensure_queues

    lam = LambdaSettings.from_cloudformation()
    suffix = uuid.uuid4().hex[:8]
    settings = {
        "CHROMASYNC_TABLE": f"cost-{suffix}",
        "CHROMASYNC_QUEUE_PREFIX": f"cost{suffix}-",
        "CHROMASYNC_CHROMA_DIR": str(workdir / "chroma"),
        # As deployed (deploy/cloudformation.yaml): locks in DynamoDB, so they are counted.
        "CHROMASYNC_LOCK_URL": f"dynamodb://cost-locks-{suffix}",
        "CHROMASYNC_CHECKPOINT_URL": redis_url,
        "CHROMASYNC_METRICS_URL": redis_url,
        "CHROMASYNC_EVENTS_URL": redis_url,
        "CHROMASYNC_AUDIT_LOG": str(workdir / "audit.jsonl"),
    }
    logs = workdir / "logs"
    stack = BenchStack.on_moto(settings, logs, logs / "moto.log", count_requests=True)
    results: list[KindCost] = []
    try:
        receipts = bench_receipts(profile.receipts)
        stack.seed(receipts)
        staged = stack.stage_merges(
            bench_receipts(profile.changes["merge"], first=profile.receipts), profile.receipts
        )
        builder = WorkloadBuilder(receipts)
        batches = workloads(builder, profile, staged)
        run = CostRun(stack, lam, echo)
        stack.start_workers()
        # Not counted: connections, queue URLs and Chroma handles a warm Lambda container
        # and a running worker already hold (each design's first batch would pay them).
        run.run("warm-up", "chromasync", builder.single(6, "wc"), profile.timeout)
        for kind in KINDS:
            results.append(run.run(kind, "chromasync", batches[kind], profile.timeout))
        stack.assembly.stop_workers()
        per_message = per_message_queues(stack.settings)
        ensure_queues(per_message)
        queues = dict(zip(stack.settings.collections, per_message.collections, strict=True))
        stack.start_workers(app="benchmarks.baseline", queues=queues, extra_env=PER_MESSAGE_ENV)
        run.run("warm-up", "per-message", builder.single(6, "wp"), profile.timeout)
        # The same builder: it knows which words the deletions took away.
        drawn = builder.single(3 * profile.per_message, "q")
        for kind in PER_MESSAGE_KINDS:
            ops = [op for op in drawn if op.kind == kind]
            results.append(run.run(kind, "per-message", ops, profile.timeout))
        stack.assembly.stop_workers()
        transport = celery_settings(stack.env)["broker_transport_options"]
    finally:
        stack.close()
    idle = idle_receives_per_month(
        float(transport.get("wait_time_seconds", 0)), float(transport.get("polling_interval", 0))
    )
    return {
        "profile": profile.name,
        "lambda": asdict(lam),
        "prices": {"date": PRICES_DATE, "region": PRICES_REGION, **PRICES},
        "idle_receives_per_queue_month": round(idle),
        "kinds": [r.to_json() for r in results],
    }


# -- the table -----------------------------------------------------------------------------


def _money(value: float) -> str:
    return f"${value:,.4f}" if value < 1 else f"${value:,.2f}"


def cost_table(section: Mapping[str, Any]) -> str:
    """The cost section as a Markdown table (the one BENCHMARKS.md records)."""
    rows = [
        "| kind | design | changes | DynamoDB RRU | DynamoDB WRU | SQS requests | SQS messages "
        "| Lambda invocations | Lambda GB-s | S3 requests | $ per million changes | ratio |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    kinds = list(section["kinds"])
    per_message = {k["kind"]: k for k in kinds if k["design"] == "per-message"}
    for k in kinds:
        u = k["usage"]
        total = k["dollars_per_million_changes"]["total"]
        ratio = ""
        if k["design"] == "chromasync" and k["kind"] in per_message:
            theirs = per_message[k["kind"]]["dollars_per_million_changes"]["total"]
            ratio = f"{theirs / total:.1f} × cheaper" if total else ""
        elif k["design"] == "per-message":
            ratio = "1"
        s3 = u["s3_put_requests"] + u["s3_get_requests"]
        rows.append(
            f"| {k['kind']} | {k['design']} | {k['changes']:,} | {u['dynamodb_read_units']:,.0f} "
            f"| {u['dynamodb_write_units']:,.0f} | {u['sqs_requests']:,.0f} | {k['messages']:,.1f} "
            f"| {u['lambda_invocations']:g} | {u['lambda_gb_seconds']:.2f} | {s3:,.0f} "
            f"| {_money(total)} | {ratio} |"
        )
    return "\n".join(rows)


def render_cost(section: Mapping[str, Any]) -> list[str]:
    """The cost section as ``chromasync bench`` prints it: a title, the table, its footing."""
    lam, prices = section["lambda"], section["prices"]
    return [
        f"AWS cost per million changes (measured requests; {section['profile']} profile)",
        cost_table(section),
        f"Lambda: BatchSize {lam['batch_size']}, MemorySize {lam['memory_mb']} MB. "
        f"Idle: {section['idle_receives_per_queue_month']:,} empty receives per queue a month. "
        f"Prices: on-demand list, {prices['region']}, stated {prices['date']} (re-check them).",
    ]


def breakdown(section: Mapping[str, Any]) -> str:
    """Requests and units by operation, per 1,000 changes, one line per kind and design."""
    lines = []
    for k in section["kinds"]:
        parts = [f"{n} {v:,.1f}" for n, v in sorted(k["requests"].items())]
        reads = [f"{n} {v:,.1f}" for n, v in sorted(k["read_units"].items())]
        writes = [f"{n} {v:,.1f}" for n, v in sorted(k["write_units"].items())]
        d = k["dollars_per_million_changes"]
        lines.append(
            f"- {k['kind']}, {k['design']}: requests {', '.join(parts)}; RRU {', '.join(reads)}; "
            f"WRU {', '.join(writes)}; task messages {k['messages']:,.1f} of "
            f"{k['message_bytes']:,.0f} bytes on average; "
            f"$ DynamoDB {d['dynamodb']:.4f}, SQS {d['sqs']:.4f}, "
            f"Lambda {d['lambda']:.4f}, S3 {d['s3']:.4f}"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--quick", action="store_true")
    group.add_argument("--smoke", action="store_true")
    parser.add_argument("--workdir", type=Path, default=Path(".chromasync/cost"))
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/13")
    parser.add_argument("--json", type=Path, help="also write the section here")
    args = parser.parse_args(argv)
    profile = PROFILES["smoke" if args.smoke else "quick" if args.quick else "full"]
    import json
    import shutil

    shutil.rmtree(args.workdir, ignore_errors=True)
    section = measure_cost(profile, args.workdir, args.redis_url)
    print()
    print("\n".join(render_cost(section)))
    print()
    print(breakdown(section))
    if args.json:
        args.json.write_text(json.dumps(section, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
