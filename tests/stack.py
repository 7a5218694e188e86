"""A whole chromasync system for one test: table, queues, seeded Chroma, real workers.

A :class:`~chromasync.localsystem.LocalSystem` on the session's moto server,
with what the tests ask of it: workers whose logs are never shared, a poller
to drive by hand or in a thread, the CLI, and polls for the state they wait for.
"""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import boto3

from chromasync.core.keys import image_pk, receipt_sk
from chromasync.local import wait_for
from chromasync.localsystem import LocalSystem
from chromasync.provision import queues_empty
from chromasync.seed import ReceiptSpec, merchant_fields
from chromasync.workers import WorkerProcess
from producers.pipeline import StreamProcessor
from producers.poller import StreamPoller
from producers.publishing import Publisher


class Stack(LocalSystem):
    """``Stack(env, tmp_path)``: provisioned on the moto ``env`` points at; logs in ``tmp_path``."""

    def __post_init__(self) -> None:
        super().__post_init__()
        self.sqs = boto3.client("sqs", **self.settings.aws.client_kwargs())
        #: Workers started so far, stopped ones included: numbers their logs.
        self.started = 0

    @property
    def lines(self) -> str:
        return self.settings.lines_collection

    @property
    def words(self) -> str:
        return self.settings.words_collection

    def start_worker(
        self, collection: str, name: str | None = None, extra_env: dict[str, str] | None = None
    ) -> WorkerProcess:
        """One more worker for ``collection``, logging to a file of its own (``name`` in it)."""
        (worker,) = self.assembly.start_workers(
            [collection], log_names=[self._log_name(name or collection)], extra_env=extra_env
        )
        return worker

    def start_workers(self) -> None:
        """One worker per target (each collection, each other sink's table), started together."""
        names = self.settings.targets
        self.assembly.start_workers(names, log_names=[self._log_name(c) for c in names])

    def _log_name(self, name: str) -> str:
        # Numbered: a worker started again for a collection gets a log of its own.
        self.started += 1
        return f"worker-{name}-{self.started - 1}.log"

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

    def poller(self, publisher: Publisher | None = None) -> StreamPoller:
        """A poller to drive by hand (``poll_once``) or in a thread."""
        return self.assembly.poller(
            StreamProcessor(self.settings, publisher or Publisher(self.settings))
        )

    def queues_empty(self, include_dlq: bool = False) -> bool:
        return queues_empty(self.settings, self.sqs, include_dead_letters=include_dlq)

    def drain(self, poller: StreamPoller, timeout: float = 60) -> None:
        """Poll the stream until it is read to the end and the workers emptied the queues."""

        def done() -> bool:
            self.assembly.check_workers()
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
        """Seed the receipts, start one worker per target and the poller (in a thread, as
        ``chromasync run`` runs it); stop the poller after."""
        self.seed(receipts)
        self.start_workers()
        poller = self.assembly.poller_component()
        poller.start()
        try:
            assert poller.poller is not None
            yield poller.poller
        finally:
            poller.stop(30)


def run_poller_in_thread(poller: StreamPoller) -> tuple[threading.Thread, threading.Event]:
    stop = threading.Event()
    thread = threading.Thread(target=poller.run, args=(stop,), daemon=True)
    thread.start()
    return thread, stop
