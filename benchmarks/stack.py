"""One benchmark system: moto (server mode), redis-server, an embedded Chroma directory.

A :class:`~chromasync.localsystem.LocalSystem`, so the pieces are chromasync's
own (``provision``, the seed helpers, the workers and the poller of
:mod:`chromasync.assembly`) and what is measured is what ships. Timing comes from
the workers' audit log (``CHROMASYNC_AUDIT_LOG``: wall-clock start and end of
every Chroma write call), so the moment the last write ended is known exactly,
whatever the benchmark's own polling interval.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.workload import Expect, Role, TableOp, final_expectations
from chromasync.local import wait_for
from chromasync.localsystem import LocalSystem
from chromasync.processes import spawn, stop_process
from chromasync.seed import ReceiptSpec, table_items, upload_deltas
from chromasync.workers import TASKS_APP, WorkerProcess
from producers.checkpoints import checkpoint_store_from_env
from producers.pipeline import ProcessReport, StreamProcessor
from producers.publishing import Publisher

#: Bucket holding the staged receipts' deltas.
DELTA_BUCKET = "chromasync-bench-deltas"
#: Ids per Chroma ``get`` while checking visibility.
CHECK_CHUNK = 2000
#: Seconds a worker has to become ready: it starts while moto serves a seeded table.
WORKER_READY_TIMEOUT = 90.0
#: Seconds the poller process has to finish its round after SIGTERM.
POLLER_STOP_TIMEOUT = 20.0


class _SkipProcessor(StreamProcessor):
    """Reads records and publishes nothing: moves the checkpoint past the seeded items."""

    def process(self, raw_records: Any) -> ProcessReport:
        return ProcessReport(records=len(raw_records))


@dataclass
class PollerProcess:
    """``python -m benchmarks.poll_process`` and the wall-clock time it started polling."""

    process: subprocess.Popen[bytes]
    started_at: float
    log_path: Path

    def stop(self) -> None:
        stop_process(self.process, POLLER_STOP_TIMEOUT)


class BenchStack(LocalSystem):
    """Built by :meth:`start`: its own moto, names of its own, Redis for locks, checkpoints
    and metrics."""

    @classmethod
    def start(cls, workdir: Path, redis_url: str) -> BenchStack:
        suffix = uuid.uuid4().hex[:8]
        settings = {
            "CHROMASYNC_TABLE": f"bench-{suffix}",
            "CHROMASYNC_QUEUE_PREFIX": f"bench{suffix}-",
            "CHROMASYNC_CHROMA_DIR": str(workdir / "chroma"),
            "CHROMASYNC_LOCK_URL": redis_url,
            "CHROMASYNC_CHECKPOINT_URL": redis_url,
            "CHROMASYNC_METRICS_URL": redis_url,
            "CHROMASYNC_EVENTS_URL": redis_url,
            "CHROMASYNC_AUDIT_LOG": str(workdir / "audit.jsonl"),
        }
        logs = workdir / "logs"
        return cls.on_moto(settings, logs, logs / "moto.log")

    @property
    def workdir(self) -> Path:
        """Chroma, the audit log, the poller's ready files; ``logs/`` under it."""
        return self.log_dir.parent

    # -- clients ---------------------------------------------------------------------------

    def boto(self, service: str) -> Any:
        import boto3

        return boto3.client(service, **self.settings.aws.client_kwargs())

    def collection_name(self, role: Role) -> str:
        return self.settings.lines_collection if role == "lines" else self.settings.words_collection

    def role_collection(self, role: Role) -> Any:
        """The Chroma collection playing ``role``."""
        return self.collection(self.collection_name(role))

    # -- data ------------------------------------------------------------------------------

    def stage_merges(
        self, specs: list[ReceiptSpec], first_index: int
    ) -> list[tuple[ReceiptSpec, int, str, dict[str, str]]]:
        """Receipts whose items are in the table and whose embeddings wait in S3 deltas.

        Each ``(spec, index, run_id, prefixes)`` becomes a COMPACTION_RUN INSERT in a
        workload: the only write left for the merge is the one a real job makes last.
        """
        s3 = self.boto("s3")
        s3.create_bucket(Bucket=DELTA_BUCKET)
        with self.table.batch_writer() as batch:
            for offset, spec in enumerate(specs):
                for item in table_items(spec, first_index + offset):
                    batch.put_item(Item=item)
        staged = []
        for offset, spec in enumerate(specs):
            index = first_index + offset
            run_id = f"bench-run-{index}"
            collections = {role: self.collection_name(role) for role in ("lines", "words")}
            prefixes = upload_deltas(s3, DELTA_BUCKET, spec, index, run_id, collections)
            staged.append((spec, index, run_id, prefixes))
        return staged

    def skip_stream(self) -> str | None:
        """Checkpoint past every record now in the stream; returns the last sequence number.

        moto numbers a shard's records consecutively, so the last one is found by
        probing sequence numbers (a gallop, then a bisection) instead of reading every
        record, which costs moto time per record; it is checked, and if the check
        fails the stream is read to its end instead.
        """
        store = checkpoint_store_from_env(self.env, self.settings.aws)
        poller = self.assembly.poller(_SkipProcessor(self.settings, Publisher(self.settings)))
        poller.discover()
        streams = poller.streams
        (shard_id,) = poller.shards
        last = self._last_sequence(streams, poller.stream_arn, shard_id)
        if last is not None:
            store.put(poller.stream_arn, shard_id, last)
            return last
        while poller.poll_once():
            pass
        return store.get(poller.stream_arn, shard_id)

    @staticmethod
    def _last_sequence(streams: Any, arn: str, shard_id: str) -> str | None:
        def read(kind: str, sequence: str | None = None, limit: int = 1) -> list[Any]:
            extra = {"SequenceNumber": sequence} if sequence else {}
            iterator = streams.get_shard_iterator(
                StreamArn=arn, ShardId=shard_id, ShardIteratorType=kind, **extra
            )["ShardIterator"]
            return list(streams.get_records(ShardIterator=iterator, Limit=limit)["Records"])

        first = read("TRIM_HORIZON")
        if not first:
            return None
        low = int(first[0]["dynamodb"]["SequenceNumber"])
        high = low + 1
        while read("AT_SEQUENCE_NUMBER", str(high)):  # gallop to past the end
            high = low + 2 * (high - low)
        while high - low > 1:  # the last existing one lies in [low, high)
            middle = (low + high) // 2
            if read("AT_SEQUENCE_NUMBER", str(middle)):
                low = middle
            else:
                high = middle
        return str(low) if not read("AFTER_SEQUENCE_NUMBER", str(low)) else None

    def write(self, ops: Iterable[TableOp]) -> float:
        """Write the ops as fast as the table takes them (25 per BatchWriteItem); seconds."""
        started = time.perf_counter()
        # Two writes of one key in one BatchWriteItem are refused; the later one wins.
        with self.table.batch_writer(overwrite_by_pkeys=["PK", "SK"]) as batch:
            for op in ops:
                if op.put is not None:
                    batch.put_item(Item=op.put)
                elif op.delete is not None:
                    batch.delete_item(Key=op.delete)
        return time.perf_counter() - started

    # -- processes -------------------------------------------------------------------------

    def start_workers(
        self,
        app: str = TASKS_APP,
        queues: Mapping[str, str] | None = None,
        extra_env: Mapping[str, str] | None = None,
    ) -> list[WorkerProcess]:
        """One worker per collection (concurrency 1), as an operator starts them.

        ``queues`` maps each collection to the queue its worker consumes instead of its own.
        """
        queues = queues or {c: self.settings.queue_for(c) for c in self.settings.collections}
        return self.assembly.start_workers(
            list(queues),
            queues=queues,
            app=app,
            log_names=[f"worker-{app}-{queue}.log" for queue in queues.values()],
            extra_env=extra_env,
            timeout=WORKER_READY_TIMEOUT,
        )

    def pids(self) -> dict[str, int]:
        """Process ids of moto and each worker, by label (for CPU accounting)."""
        assert self.moto is not None
        pids = {"moto": self.moto.process.pid}
        for worker in self.workers:
            pids[f"worker {worker.collection}"] = worker.process.pid
        return pids

    def start_poller(
        self, mode: str = "chromasync", idle_sleep: float | None = None, tag: str = ""
    ) -> PollerProcess:
        """The stream poller in its own process (as ``chromasync poll`` runs)."""
        ready = self.workdir / f"poller-{mode}{tag}.ready"
        ready.unlink(missing_ok=True)
        log = self.workdir / "logs" / f"poller-{mode}{tag}.log"
        command = [sys.executable, "-m", "benchmarks.poll_process", "--mode", mode]
        command += ["--ready-file", str(ready)]
        if idle_sleep is not None:
            command += ["--idle-sleep", str(idle_sleep)]
        process = spawn(command, log=log, env=self.env)

        def started() -> float | None:
            if process.poll() is not None:
                raise RuntimeError(f"poller exited:\n{log.read_text(errors='replace')[-3000:]}")
            return float(ready.read_text()) if ready.exists() and ready.read_text() else None

        started_at = wait_for(started, 60, interval=0.02, what="the stream poller")
        assert started_at is not None
        return PollerProcess(process, started_at, log)

    # -- observing Chroma ------------------------------------------------------------------

    def metadata(self, role: Role, ids: list[str]) -> dict[str, dict[str, Any]]:
        got = self.role_collection(role).get(ids=ids, include=["metadatas"])
        return dict(zip(got["ids"], got["metadatas"], strict=True))

    def pending(self, expectations: dict[tuple[Role, str], list[Expect]]) -> set[tuple[Role, str]]:
        """Embeddings whose expectations do not all hold yet."""
        waiting: set[tuple[Role, str]] = set()
        for role in ("lines", "words"):
            ids = sorted(eid for r, eid in expectations if r == role)
            for start in range(0, len(ids), CHECK_CHUNK):
                chunk = ids[start : start + CHECK_CHUNK]
                found = self.metadata(role, chunk)
                for eid in chunk:
                    if not all(e.holds(found.get(eid)) for e in expectations[(role, eid)]):
                        waiting.add((role, eid))
        return waiting

    def wait_visible(self, ops: list[TableOp], timeout: float, interval: float = 0.25) -> float:
        """Block until every op is visible in Chroma; returns the wall-clock time it was seen."""
        left = final_expectations(ops)
        deadline = time.monotonic() + timeout
        while True:
            self.assembly.check_workers()
            waiting = self.pending(left)
            left = {k: v for k, v in left.items() if k in waiting}
            if not left:
                return time.time()
            if time.monotonic() > deadline:
                sample = sorted(left)[:5]
                raise TimeoutError(
                    f"{len(left)} embeddings still not as the table says after {timeout}s "
                    f"(e.g. {sample}); see the logs in {self.workdir / 'logs'}"
                )
            time.sleep(interval)

    # -- the audit log ---------------------------------------------------------------------

    @property
    def audit_path(self) -> Path:
        return Path(self.env["CHROMASYNC_AUDIT_LOG"])

    def audit_offset(self) -> int:
        return self.audit_path.stat().st_size if self.audit_path.exists() else 0

    def audit_writes(self, offset: int) -> list[dict[str, Any]]:
        """Write records of the audit log appended after ``offset``."""
        if not self.audit_path.exists():
            return []
        with open(self.audit_path, "rb") as handle:
            handle.seek(offset)
            lines = handle.read().decode().splitlines()
        return [r for r in (json.loads(line) for line in lines if line) if r["event"] == "write"]
