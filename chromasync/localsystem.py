"""A whole system on local services, made from nothing: the demo's, each test's, the benchmark's.

Building one provisions what its environment names (the source table with its
stream, the queues, the checkpoint and lock tables, the snapshot bucket); its
Chroma is at hand and :meth:`LocalSystem.seed` fills table and Chroma with
receipts; :attr:`LocalSystem.assembly` starts its workers and builds its poller
the way ``chromasync run`` does. :meth:`LocalSystem.on_moto` first starts the
moto server it runs on, which :meth:`LocalSystem.close` stops.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

from chromasync.assembly import Assembly
from chromasync.core.config import Settings
from chromasync.local import MotoServer
from chromasync.provision import provision
from chromasync.seed import ReceiptSpec, seed_chroma, seed_table
from chromasync.workers import WorkerProcess
from tasks.chroma.factory import chroma_target_from_settings
from tasks.chroma.target import ChromaTarget
from tasks.config import WorkerSettings

#: Settings a developer's shell may hold that would send the pieces of a system started
#: by :meth:`LocalSystem.on_moto` elsewhere than its own moto and Chroma directory.
FOREIGN_SETTINGS = ("CELERY_BROKER_URL", "CHROMASYNC_CHROMA_URL", "CHROMASYNC_FIFO")


@dataclass
class LocalSystem:
    """A provisioned system: ``env`` names its services, its workers log to ``log_dir``."""

    env: dict[str, str]
    log_dir: Path
    #: The moto server it started (:meth:`on_moto`) and :meth:`close` stops.
    moto: MotoServer | None = None
    assembly: Assembly = field(init=False)
    _table: Any = field(init=False, default=None, repr=False)
    _target: ChromaTarget | None = field(init=False, default=None, repr=False)

    def __post_init__(self) -> None:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        provision(self.env, source_table=True)
        self.assembly = Assembly.from_env(self.env, self.log_dir)

    @classmethod
    def on_moto(
        cls,
        settings: Mapping[str, str],
        log_dir: Path,
        moto_log: Path,
        count_requests: bool = False,
        **fields: Any,
    ) -> Self:
        """Start moto, then a system on it: this process's environment without
        :data:`FOREIGN_SETTINGS`, pointed at moto, with ``settings`` on top.

        ``count_requests``: moto counts requests and billed units (the AWS cost
        model, :meth:`MotoServer.requests`). ``fields`` go to the constructor (a
        subclass's own).
        """
        moto_log.parent.mkdir(parents=True, exist_ok=True)
        moto = MotoServer.start(log=moto_log, count_requests=count_requests)
        try:
            env = {k: v for k, v in os.environ.items() if k not in FOREIGN_SETTINGS}
            env.update({**moto.client_env(), "ANONYMIZED_TELEMETRY": "False", **settings})
            return cls(env, log_dir, moto, **fields)
        except BaseException:
            moto.stop()
            raise

    @property
    def settings(self) -> Settings:
        return self.assembly.settings

    @property
    def workers(self) -> list[WorkerProcess]:
        """Workers started by the assembly and not stopped yet, in order."""
        return self.assembly.workers

    @property
    def table(self) -> Any:
        """The source table (a boto3 ``Table`` resource)."""
        if self._table is None:
            import boto3

            resource = boto3.resource("dynamodb", **self.settings.aws.client_kwargs())
            self._table = resource.Table(self.settings.table)
        return self._table

    @property
    def target(self) -> ChromaTarget:
        """The Chroma the workers write to: ``CHROMASYNC_CHROMA_URL``, else the directory."""
        if self._target is None:
            self._target = chroma_target_from_settings(WorkerSettings.from_env(self.env))
        return self._target

    def collection(self, name: str) -> Any:
        return self.target.collection(name)

    def seed(self, receipts: list[ReceiptSpec]) -> tuple[int, int]:
        """Table items and embeddings of the receipts; returns (items, embeddings)."""
        items = seed_table(self.table, receipts)
        embeddings = sum(
            seed_chroma(self.target, name, role, receipts)
            for role, name in self.settings.roles.items()
        )
        return items, embeddings

    def stop(self) -> None:
        """Stop the workers it started (warm shutdown first)."""
        self.assembly.stop_workers()

    def close(self) -> None:
        """Stop the workers, close Chroma, stop moto if it started it."""
        self.stop()
        if self._target is not None:
            self._target.close()
        if self.moto is not None:
            self.moto.stop()
