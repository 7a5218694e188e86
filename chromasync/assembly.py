"""One way to put the pipeline together from one environment: worker processes and the poller.

``chromasync run`` (and so its demo), the tests' Stack and the benchmark start
their workers and build their stream poller here, so what the tests and the
benchmark exercise is what an operator runs: one ``celery -A tasks worker -Q
QUEUE -c 1`` per collection, each logging to a file of its own, and a
:class:`~producers.poller.StreamPoller` publishing through the
:class:`~producers.publishing.Publisher` and keeping its place in the checkpoint
store the environment names.

``run`` hands the supervised components (:meth:`Assembly.poller_component`,
:meth:`Assembly.worker_component`) to :class:`~chromasync.supervisor.Supervisor`;
the tests and the benchmark start workers with :meth:`Assembly.start_workers`,
which keeps them for :meth:`Assembly.stop_workers`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from chromasync.components import PollerComponent, WorkerComponent
from chromasync.core.config import Settings
from chromasync.local import wait_for
from chromasync.processes import stop_all
from chromasync.shard_metrics import ShardMetrics
from chromasync.workers import TASKS_APP, WorkerProcess
from producers.checkpoints import checkpoint_store_from_env
from producers.pipeline import StreamProcessor
from producers.poller import ShardProgress, StartPosition, StreamPoller
from producers.publishing import Publisher

#: Seconds :meth:`Assembly.start_workers` waits for a worker to log that it consumes.
WORKER_READY_TIMEOUT = 60.0
#: Seconds :meth:`Assembly.stop_workers` gives the workers to finish their tasks, all together.
WORKER_STOP_TIMEOUT = 20.0
#: Seconds between two looks at a starting worker's log.
READY_POLL = 0.1


@dataclass
class Assembly:
    """The pipeline's pieces for one environment: its settings, its env, where logs go."""

    settings: Settings
    env: Mapping[str, str]
    log_dir: Path
    #: Workers started by :meth:`start_workers`, in order; :meth:`stop_workers` stops them.
    workers: list[WorkerProcess] = field(default_factory=list)

    @classmethod
    def from_env(cls, env: Mapping[str, str], log_dir: Path) -> Assembly:
        return cls(Settings.from_env(env), env, log_dir)

    # -- workers ---------------------------------------------------------------------------

    def worker(
        self,
        collection: str,
        *,
        queue: str | None = None,
        app: str = TASKS_APP,
        log_name: str | None = None,
        extra_env: Mapping[str, str] | None = None,
        with_parent: bool = False,
    ) -> WorkerProcess:
        """Start one worker for ``collection``; it is not kept (see :meth:`start_workers`).

        It consumes ``queue`` (the collection's own by default) and appends to
        ``log_dir/log_name`` (``worker-COLLECTION.log`` by default). ``with_parent``:
        it gets SIGTERM when this process dies (``chromasync run``).
        """
        return WorkerProcess.start(
            collection,
            queue or self.settings.queue_for(collection),
            {**self.env, **(extra_env or {})},
            self.log_dir / (log_name or f"worker-{collection}.log"),
            app=app,
            with_parent=with_parent,
        )

    def start_workers(
        self,
        collections: Iterable[str] | None = None,
        *,
        queues: Mapping[str, str] | None = None,
        app: str = TASKS_APP,
        log_names: Sequence[str] | None = None,
        extra_env: Mapping[str, str] | None = None,
        timeout: float = WORKER_READY_TIMEOUT,
    ) -> list[WorkerProcess]:
        """Start one worker per target (every collection and sink table by default); wait until
        each consumes.

        ``queues`` maps a collection to the queue its worker consumes instead of its
        own; ``log_names`` names each worker's log, in order. The workers are kept
        as soon as they start, so :meth:`stop_workers` stops them even when one
        never becomes ready.
        """
        names = list(self.settings.targets if collections is None else collections)
        logs = list(log_names) if log_names is not None else [None] * len(names)
        started = []
        for collection, log_name in zip(names, logs, strict=True):
            queue = (queues or {}).get(collection)
            worker = self.worker(
                collection, queue=queue, app=app, log_name=log_name, extra_env=extra_env
            )
            self.workers.append(worker)
            started.append(worker)
        for worker in started:
            wait_for(worker.ready, timeout, interval=READY_POLL, what=f"worker {worker.collection}")
        return started

    def check_workers(self) -> None:
        """Raise, with the end of its log, when a kept worker has exited."""
        for worker in self.workers:
            worker.check_alive()

    def stop_workers(self, timeout: float = WORKER_STOP_TIMEOUT) -> None:
        """Warm shutdown of every kept worker at once, then SIGKILL what is left; forget them."""
        stop_all(self.workers, timeout)
        self.workers.clear()

    def worker_component(self, collection: str) -> WorkerComponent:
        """A supervised worker: each (re)start appends to ``worker-COLLECTION.log`` and dies
        with this process."""
        return WorkerComponent(collection, lambda: self.worker(collection, with_parent=True))

    # -- the poller ------------------------------------------------------------------------

    def poller(
        self,
        processor: StreamProcessor | None = None,
        *,
        start: StartPosition = "TRIM_HORIZON",
        on_shard: Callable[[ShardProgress], None] | None = None,
    ) -> StreamPoller:
        """A stream poller (it describes the table: raises if the stream is missing).

        ``processor``: what it does with the records (by default, publish the
        changes as tasks); ``start``: where a shard without a checkpoint is read from.
        """
        processor = processor or StreamProcessor(self.settings, Publisher(self.settings))
        return StreamPoller(
            self.settings,
            processor,
            checkpoint_store_from_env(self.env, self.settings.aws),
            start=start,
            on_shard=on_shard,
        )

    def poller_component(
        self, start: StartPosition = "TRIM_HORIZON", *, shard_metrics: bool = False
    ) -> PollerComponent:
        """The poller in a thread of this process; each (re)start builds a new one.

        ``shard_metrics``: each poller reports its shards to the metrics store
        (a :class:`~chromasync.shard_metrics.ShardMetrics` of its own).
        """

        def build() -> StreamPoller:
            on_shard = ShardMetrics.from_env(self.env) if shard_metrics else None
            return self.poller(start=start, on_shard=on_shard)

        return PollerComponent(build)
