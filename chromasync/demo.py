"""``chromasync run --demo``: the whole pipeline on one machine, with nothing but pip packages.

It starts moto (SQS, DynamoDB + Streams, S3) on 127.0.0.1, picks a lock
backend that needs nothing more (Redis when ``REDIS_URL`` answers, else a
DynamoDB lock table on moto), seeds receipts (table items and their
embeddings), turns on both sinks (Chroma and the receipts dashboard table), starts one
worker per target and the stream poller (restarted if they stop,
:mod:`chromasync.supervisor`), edits merchant data in the table, waits until Chroma shows
every edit and checks every embedding of every receipt against the table, then has each
sink verify itself against the table (``chromasync verify``'s check).
"""

from __future__ import annotations

import os
import shutil
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chromasync.core.entities import MERCHANT_FIELDS
from chromasync.core.keys import image_pk, receipt_sk
from chromasync.local import redis_answers, wait_for
from chromasync.localsystem import LocalSystem
from chromasync.runner import RunningPipeline
from chromasync.seed import ReceiptSpec, demo_receipts, merchant_fields
from tasks.config import WorkerSettings
from tasks.sinks import build_sink
from tasks.sinks.backend import Verification

#: Receipts seeded by the demo.
DEMO_RECEIPTS = 8
#: How long the demo waits for Chroma to reflect the edits.
DEMO_TIMEOUT = 45.0
#: The sinks the demo feeds from its one stream.
DEMO_SINKS = "chroma,dashboard"


@dataclass
class DemoReport:
    receipts: int = 0
    embeddings: int = 0
    edits: int = 0
    records_seen: int = 0
    changes: int = 0
    ignored: int = 0
    malformed: int = 0
    tasks_sent: int = 0
    embeddings_updated: int = 0
    lags: list[float] = field(default_factory=list)
    mismatches: list[str] = field(default_factory=list)
    #: Each sink's verify summary and how many things drifted.
    sinks: dict[str, tuple[str, int]] = field(default_factory=dict)
    lock: str = ""
    elapsed: float = 0.0

    def render(self) -> str:
        lag = (
            f"p50 {statistics.median(self.lags):.2f}s, max {max(self.lags):.2f}s"
            if self.lags
            else "n/a"
        )
        lines = [
            "chromasync demo report",
            f"  receipts seeded          {self.receipts} ({self.embeddings} embeddings)",
            f"  lock backend             {self.lock}",
            f"  merchant edits           {self.edits}",
            f"  stream records seen      {self.records_seen} "
            f"({self.changes} changes, {self.ignored} ignored, {self.malformed} malformed)",
            f"  tasks sent               {self.tasks_sent}",
            f"  embeddings updated       {self.embeddings_updated}",
            f"  end-to-end lag           {lag}",
            *(
                f"  sink {name:<19} {drifted} mismatches ({summary})"
                for name, (summary, drifted) in self.sinks.items()
            ),
            f"  mismatches               {len(self.mismatches)}",
            f"  total time               {self.elapsed:.1f}s",
        ]
        lines += [f"    ! {m}" for m in self.mismatches[:20]]
        return "\n".join(lines)


def _edit_merchant(table: Any, spec: ReceiptSpec, index: int, edition: int) -> dict[str, str]:
    fields = merchant_fields(index, edition)
    names = {f"#{k}": k for k in fields}
    values = {f":{k}": v for k, v in fields.items()}
    table.update_item(
        Key={"PK": image_pk(spec.image_id), "SK": f"{receipt_sk(spec.receipt_id)}#METADATA"},
        UpdateExpression="SET " + ", ".join(f"#{k} = :{k}" for k in fields),
        ExpressionAttributeNames=names,
        ExpressionAttributeValues=values,
    )
    return fields


def _receipt_embeddings(collection: Any, spec: ReceiptSpec) -> dict[str, dict[str, Any]]:
    where = {"$and": [{"image_id": spec.image_id}, {"receipt_id": spec.receipt_id}]}
    got = collection.get(where=where, include=["metadatas"])
    return dict(zip(got["ids"], got["metadatas"], strict=True))


def check_receipt(collections: list[Any], spec: ReceiptSpec, expected: dict[str, str]) -> list[str]:
    """Mismatches between the embeddings' merchant fields and the table's."""
    problems = []
    for collection in collections:
        for eid, meta in _receipt_embeddings(collection, spec).items():
            for name in MERCHANT_FIELDS:
                if meta.get(name) != expected.get(name):
                    problems.append(
                        f"{collection.name} {eid}: {name}={meta.get(name)!r}, "
                        f"table has {expected.get(name)!r}"
                    )
    return problems


def verify_sink(settings: WorkerSettings, name: str) -> Verification:
    """What ``chromasync verify --sink NAME`` finds, every target of the sink."""
    shared = settings.shared
    sink = build_sink(name, settings)
    try:
        targets = [t for t in shared.targets if shared.sink_of(t) == name]
        return sink.verify(targets)
    finally:
        sink.close()


def run_demo(
    workdir: Path, receipts: int = DEMO_RECEIPTS, timeout: float = DEMO_TIMEOUT, echo: Any = print
) -> DemoReport:
    started = time.monotonic()
    report = DemoReport(receipts=receipts)
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    echo(f"starting moto (SQS, DynamoDB + Streams, S3) on 127.0.0.1; logs in {workdir}")
    redis_url = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
    settings_env = {
        "CHROMASYNC_TABLE": "ReceiptsTable",
        "CHROMASYNC_CHROMA_DIR": str(workdir / "chroma"),
        "CHROMASYNC_CHECKPOINT_URL": "dynamodb://chromasync-checkpoints",
        "CHROMASYNC_SINKS": DEMO_SINKS,
    }
    if redis_answers(redis_url):
        settings_env["CHROMASYNC_LOCK_URL"] = redis_url
        report.lock = f"redis ({redis_url})"
    else:
        settings_env["CHROMASYNC_LOCK_URL"] = "dynamodb://chromasync-locks"
        report.lock = "dynamodb (chromasync-locks on moto)"
    system = LocalSystem.on_moto(settings_env, workdir / "logs", workdir / "moto.log")
    try:
        settings, table = system.settings, system.table
        os.environ.update(system.env)
        specs = demo_receipts(receipts)
        report.embeddings = system.seed(specs)[1]
        echo(f"seeded {receipts} receipts: table items and {report.embeddings} embeddings")
        collections = [system.collection(c) for c in settings.collections]

        with RunningPipeline(system.assembly) as pipeline:
            pipeline.wait_ready(timeout=60)
            echo("workers ready; applying the seeded inserts from the stream")
            wait_for(pipeline.idle, timeout, interval=0.2, what="the seeded inserts to be applied")
            echo("pipeline idle; editing merchant data in the table")
            written: dict[int, float] = {}
            expected: dict[int, dict[str, str]] = {}
            for index, spec in enumerate(specs):
                expected[index] = _edit_merchant(table, spec, index, edition=1)
                written[index] = time.time()
                report.edits += 1
            pending = set(expected)
            deadline = time.monotonic() + timeout
            while pending and time.monotonic() < deadline:
                pipeline.supervise()
                for index in sorted(pending):
                    if not check_receipt(collections, specs[index], expected[index]):
                        report.lags.append(time.time() - written[index])
                        pending.discard(index)
                time.sleep(0.1)
            wait_for(pipeline.idle, timeout, interval=0.2, what="the edits to be applied")
            worker_settings = WorkerSettings.from_env(system.env)
            for name in settings.sinks:
                verification = verify_sink(worker_settings, name)
                report.sinks[name] = (verification.summary(), len(verification.drift))
                report.mismatches.extend(
                    f"{name} {d.kind} {d.target} {d.key} {d.detail}".rstrip()
                    for d in verification.drift
                )
            assert pipeline.poller is not None
            stats = pipeline.poller.stats.report
            report.records_seen = stats.records
            report.changes = stats.changes
            report.ignored = sum(stats.ignored.values())
            report.malformed = len(stats.malformed)
            report.tasks_sent = stats.tasks_sent
        for index, spec in enumerate(specs):
            if index in pending:
                report.mismatches.append(
                    f"receipt {spec.image_id}/{spec.receipt_id}: edit not visible after {timeout}s"
                )
            problems = check_receipt(collections, spec, expected[index])
            report.mismatches.extend(problems)
            if not problems:
                report.embeddings_updated += sum(
                    len(_receipt_embeddings(c, spec)) for c in collections
                )
    finally:
        system.close()
    report.elapsed = time.monotonic() - started
    return report


__all__ = ["DemoReport", "run_demo"]
