"""The running pipeline: one worker per collection and the stream poller.

Used by ``chromasync run`` (until interrupted) and ``chromasync run --demo``.
It creates nothing: the queues must have been provisioned (``chromasync
provision``; the demo does it first), and a missing one stops it before any
worker starts.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from chromasync.provision import queue_names, queues_empty
from chromasync.workers import WorkerProcess
from producers.checkpoints import checkpoint_store_from_env
from producers.config import Settings
from producers.pipeline import StreamProcessor
from producers.poller import StartPosition, StreamPoller
from producers.publishing import Publisher
from producers.resources import queue_url
from tasks.metrics import ShardMetrics

log = logging.getLogger(__name__)


@dataclass
class RunningPipeline:
    settings: Settings
    env: Mapping[str, str]
    log_dir: Path
    start: StartPosition = "TRIM_HORIZON"
    workers: list[WorkerProcess] = field(default_factory=list)
    poller: StreamPoller | None = None
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __enter__(self) -> RunningPipeline:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.check_queues()
        for collection in self.settings.collections:
            self.workers.append(
                WorkerProcess.start(
                    collection,
                    self.settings.queue_for(collection),
                    self.env,
                    self.log_dir / f"worker-{collection}.log",
                )
            )
        processor = StreamProcessor(self.settings, Publisher(self.settings))
        self.poller = StreamPoller(
            self.settings,
            processor,
            checkpoint_store_from_env(self.env, self.settings.aws),
            start=self.start,
            on_shard=ShardMetrics.from_env(self.env),
        )
        self._thread = threading.Thread(
            target=self.poller.run, args=(self._stop,), name="stream-poller", daemon=True
        )
        self._thread.start()
        return self

    def check_queues(self) -> None:
        """Raise MissingResource for the first queue that was not provisioned."""
        import boto3

        sqs = boto3.client("sqs", **self.settings.aws.client_kwargs())
        try:
            for name, _collection, _kind in queue_names(self.settings):
                queue_url(sqs, name)
        finally:
            sqs.close()

    def workers_ready(self) -> bool:
        """True once every worker has logged that it is ready to consume."""
        return all(w.ready() for w in self.workers)

    def idle(self) -> bool:
        """True when the poller is caught up and no main queue holds a message."""
        self.check_workers()
        if self.poller is None or self.poller.stats.rounds == 0 or self.poller.busy:
            return False
        return queues_empty(self.settings)

    def check_workers(self) -> None:
        for worker in self.workers:
            worker.check_alive()

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)
        for worker in self.workers:
            worker.stop()
