"""The running pipeline: one worker per target (collection, sink table) and the poller, supervised.

Used by ``chromasync run`` (until interrupted) and ``chromasync run --demo``.
It creates nothing: the queues and tables must have been provisioned
(``chromasync provision``; the demo does it first).

Before any child starts, :func:`check_pipeline` reads every setting and reaches
every service (queues, the table and its stream, checkpoints, the lock store,
Chroma), so a wrong setting or a missing queue stops ``run`` with exit status 2
or 3 and nothing to clean up. Once a child has started, any failure stops every
child started before it goes up: no worker outlives ``run``. While it runs, the
:class:`~chromasync.supervisor.Supervisor` restarts a worker or poller that
stopped, and gives up on one that keeps stopping.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from chromasync.assembly import Assembly
from chromasync.components import Component, PollerComponent, WorkerComponent
from chromasync.core.config import ConfigError, Settings
from chromasync.provision import queues_empty
from chromasync.supervisor import RestartPolicy, Supervisor
from chromasync.workers import WorkerProcess
from producers.checkpoints import checkpoint_store_from_env
from producers.poller import StartPosition, StreamPoller
from producers.quarantine import Quarantine
from tasks.config import WorkerSettings
from tasks.metrics.recording import component_restarted
from tasks.preflight import (
    PROBE_KEY,
    Probe,
    aws_client,
    check_settings,
    queue_probes,
    run_probes,
    worker_probes,
)

#: Seconds the workers have to log that they consume, from the start of ``run``.
READY_TIMEOUT = 120.0
#: Seconds between two looks at the components while waiting for them to be ready.
READY_POLL = 0.2


class NotReady(RuntimeError):
    """A component neither became ready nor stopped in :data:`READY_TIMEOUT` seconds."""


def check_pipeline(env: Mapping[str, str]) -> WorkerSettings:
    """Every setting ``run`` and its workers read, every service they use reached.

    Raises :class:`ConfigError` (exit 2), or
    :class:`~chromasync.core.resources.DeploymentError` or
    :class:`~tasks.preflight.ServiceUnreachable` (exit 3) naming the first problem.
    The stream itself is checked when the poller is built (:meth:`RunningPipeline.__enter__`).
    """
    settings = check_settings(env)
    shared = settings.shared
    checkpoints = checkpoint_store_from_env(env, shared.aws)
    sqs, dynamodb = aws_client(settings, "sqs"), aws_client(settings, "dynamodb")
    try:
        probes = worker_probes(settings, shared.targets, sqs, dynamodb)
        probes += queue_probes(sqs, [Quarantine(shared).queue_name])
        probes.append(
            Probe(
                "the checkpoint store (CHROMASYNC_CHECKPOINT_URL)",
                lambda: checkpoints.get(PROBE_KEY, PROBE_KEY),
            )
        )
        run_probes(probes)
    finally:
        sqs.close()
        dynamodb.close()
    return settings


@dataclass
class RunningPipeline:
    """The assembly's poller and one worker per target, started and supervised."""

    assembly: Assembly
    start: StartPosition = "TRIM_HORIZON"
    policy: RestartPolicy = field(default_factory=RestartPolicy)
    supervisor: Supervisor | None = None
    _poller: PollerComponent | None = None
    _workers: list[WorkerComponent] = field(default_factory=list)

    def __enter__(self) -> RunningPipeline:
        check_pipeline(self.env)
        try:
            self.log_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(
                f"the log directory {str(self.log_dir)!r} cannot be created: {exc.strerror}"
            ) from exc
        self._poller = self.assembly.poller_component(self.start, shard_metrics=True)
        self._workers = [self.assembly.worker_component(c) for c in self.settings.targets]
        components: list[Component] = [self._poller, *self._workers]
        self.supervisor = Supervisor(components, self.policy, on_restart=component_restarted)
        try:
            # The poller first: building it checks the stream before any process starts.
            for component in components:
                component.start()
        except BaseException:
            self.supervisor.stop()
            raise
        return self

    @property
    def settings(self) -> Settings:
        return self.assembly.settings

    @property
    def env(self) -> Mapping[str, str]:
        return self.assembly.env

    @property
    def log_dir(self) -> Path:
        """Where the workers' logs go."""
        return self.assembly.log_dir

    @property
    def workers(self) -> list[WorkerProcess]:
        """The worker processes running now (a restart replaces one)."""
        return [w.process for w in self._workers if w.process is not None]

    @property
    def poller(self) -> StreamPoller | None:
        """The stream poller running now (a restart replaces it)."""
        return self._poller.poller if self._poller is not None else None

    def supervise(self) -> None:
        """Restart what stopped; raises :class:`~chromasync.supervisor.GaveUp`."""
        assert self.supervisor is not None
        self.supervisor.check()

    def workers_ready(self) -> bool:
        """True once every worker has logged that it is ready to consume."""
        self.supervise()
        assert self.supervisor is not None
        return self.supervisor.ready()

    def wait_ready(
        self, stop: threading.Event | None = None, timeout: float = READY_TIMEOUT
    ) -> bool:
        """Supervise until every component is ready (True) or ``stop`` is set (False).

        Raises :class:`NotReady` after ``timeout`` seconds, and
        :class:`~chromasync.supervisor.GaveUp` for a component that keeps stopping.
        """
        stop = stop or threading.Event()
        deadline = time.monotonic() + timeout
        while not self.workers_ready():
            if time.monotonic() >= deadline:
                assert self.supervisor is not None
                waiting = [c.name for c in self.supervisor.components if not c.ready()]
                raise NotReady(
                    f"{', '.join(waiting) or 'a component'} not ready after {timeout:g}s; "
                    f"see the logs in {self.log_dir}"
                )
            if stop.wait(READY_POLL):
                return False
        return True

    def idle(self) -> bool:
        """True when the poller is caught up and no main queue holds a message."""
        self.supervise()
        poller = self.poller
        if poller is None or poller.stats.rounds == 0 or poller.busy:
            return False
        return queues_empty(self.settings)

    def __exit__(self, *exc: object) -> None:
        if self.supervisor is not None:
            self.supervisor.stop()
