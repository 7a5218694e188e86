"""A whole chromasync system for one test: table, queues, seeded Chroma, real workers."""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3

from chromasync.core.config import Settings
from chromasync.core.entities import image_pk, receipt_sk
from chromasync.local import wait_for
from chromasync.provision import provision, queues_empty
from chromasync.seed import ReceiptSpec, merchant_fields, seed_chroma, seed_table
from chromasync.workers import WorkerProcess
from producers.checkpoints import checkpoint_store_from_env
from producers.pipeline import StreamProcessor
from producers.poller import StreamPoller
from producers.publishing import Publisher
from tasks.chroma.target import chroma_target_from_settings
from tasks.config import WorkerSettings


@dataclass
class Stack:
    env: dict[str, str]
    tmp: Path
    settings: Settings = field(init=False)
    workers: list[WorkerProcess] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.settings = Settings.from_env(self.env)
        provision(self.env, source_table=True)
        kwargs = self.settings.aws.client_kwargs()
        self.table = boto3.resource("dynamodb", **kwargs).Table(self.settings.table)
        self.sqs = boto3.client("sqs", **kwargs)
        self.worker_settings = WorkerSettings.from_env(self.env)
        self.target = chroma_target_from_settings(self.worker_settings)

    @property
    def lines(self) -> str:
        return self.settings.lines_collection

    @property
    def words(self) -> str:
        return self.settings.words_collection

    def seed(self, receipts: list[ReceiptSpec]) -> None:
        seed_table(self.table, receipts)
        seed_chroma(self.target, self.lines, "lines", receipts)
        seed_chroma(self.target, self.words, "words", receipts)

    def collection(self, name: str) -> Any:
        return self.target.collection(name)

    def start_worker(
        self, collection: str, name: str | None = None, extra_env: dict[str, str] | None = None
    ) -> WorkerProcess:
        log = self.tmp / f"worker-{name or collection}-{len(self.workers)}.log"
        worker = WorkerProcess.start(
            collection, self.settings.queue_for(collection), {**self.env, **(extra_env or {})}, log
        )
        self.workers.append(worker)
        wait_for(worker.ready, 60, interval=0.1, what=f"worker {collection}")
        return worker

    def send(self, payload: Any, collection: str) -> None:
        """Enqueue a raw payload the way another service would (send_task by name)."""
        from chromasync.core.contract import APPLY_TASK_NAME
        from producers.publishing import producer_app

        app = producer_app()
        app.send_task(APPLY_TASK_NAME, args=[payload], queue=self.settings.queue_for(collection))

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        """Run ``chromasync ARGS`` with this system's environment."""
        return subprocess.run(
            [sys.executable, "-m", "chromasync.cli", *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=120,
        )

    def start_workers(self) -> None:
        for collection in self.settings.collections:
            self.start_worker(collection)

    def poller(self, publisher: Publisher | None = None) -> StreamPoller:
        processor = StreamProcessor(self.settings, publisher or Publisher(self.settings))
        return StreamPoller(
            self.settings, processor, checkpoint_store_from_env(self.env, self.settings.aws)
        )

    def queues_empty(self, include_dlq: bool = False) -> bool:
        return queues_empty(self.settings, self.sqs, include_dead_letters=include_dlq)

    def drain(self, poller: StreamPoller, timeout: float = 60) -> None:
        """Poll the stream until it is read to the end and the workers emptied the queues."""

        def done() -> bool:
            for worker in self.workers:
                worker.check_alive()
            return poller.poll_once() == 0 and self.queues_empty()

        wait_for(done, timeout, interval=0.2, what="stream and queues to drain")

    def edit_merchants(self, receipts: list[ReceiptSpec], edition: int) -> None:
        """Write edition ``edition`` of every receipt's merchant fields to the table."""
        for index, spec in enumerate(receipts):
            self.table.put_item(
                Item={
                    "PK": image_pk(spec.image_id),
                    "SK": f"{receipt_sk(spec.receipt_id)}#METADATA",
                    **merchant_fields(index, edition),
                }
            )

    def at_edition(
        self, receipts: list[ReceiptSpec], edition: int, collections: tuple[str, ...] = ()
    ) -> bool:
        """Every embedding of the receipts carries the merchant name of ``edition``."""
        by_receipt = {(s.image_id, s.receipt_id): i for i, s in enumerate(receipts)}
        for name in collections or (self.lines, self.words):
            for meta in self.collection(name).get(include=["metadatas"])["metadatas"]:
                index = by_receipt[(meta["image_id"], meta["receipt_id"])]
                if meta.get("merchant_name") != merchant_fields(index, edition)["merchant_name"]:
                    return False
        return True

    def wait_edition(
        self, receipts: list[ReceiptSpec], edition: int, timeout: float, what: str
    ) -> None:
        """Poll until every embedding of the receipts shows ``edition`` (:meth:`at_edition`)."""
        wait_for(lambda: self.at_edition(receipts, edition), timeout, interval=0.5, what=what)

    def wait_drained(self, timeout: float = 30, what: str = "queues to drain") -> None:
        """Poll until every queue and dead-letter queue is empty."""
        wait_for(lambda: self.queues_empty(include_dlq=True), timeout, interval=0.5, what=what)

    @contextmanager
    def running(self, receipts: list[ReceiptSpec]) -> Iterator[StreamPoller]:
        """Seed the receipts, start one worker per collection and the poller; stop them after."""
        self.seed(receipts)
        self.start_workers()
        poller = self.poller()
        thread, stop = run_poller_in_thread(poller)
        try:
            yield poller
        finally:
            stop.set()
            thread.join(30)

    def stop(self) -> None:
        for worker in self.workers:
            worker.stop(timeout=15)


def run_poller_in_thread(poller: StreamPoller) -> tuple[threading.Thread, threading.Event]:
    stop = threading.Event()
    thread = threading.Thread(target=poller.run, args=(stop,), daemon=True)
    thread.start()
    return thread, stop
