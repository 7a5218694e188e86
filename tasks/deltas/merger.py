"""The delta merger the worker calls for a COMPACTION_RUN change: it composes the steps.

Read the run (:mod:`~tasks.deltas.runs`), resolve its location
(:mod:`~tasks.deltas.location`), fetch it (:mod:`~tasks.deltas.fetch`),
merge it (:mod:`~tasks.deltas.merge`), mark the run done. Why in that order:

* Redelivery is normal (at-least-once): a run already marked done for this
  collection, or gone from the table, is skipped and returns 0.
* The lease is checked before every upsert and before marking the run done:
  a worker that lost its lease stops before its next write.
* The temporary download folder is removed whatever happens.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from chromasync.core.config import AwsSettings
from chromasync.core.contract import Change
from chromasync.core.entities import CollectionRole
from tasks.chroma.target import ChromaTarget
from tasks.deltas.errors import InvalidDelta
from tasks.deltas.fetch import fetch_delta
from tasks.deltas.location import parse_location
from tasks.deltas.merge import merge_directory
from tasks.deltas.runs import MERGE_COMPLETED, RunItem
from tasks.sinks.backend import LeaseCheck

if TYPE_CHECKING:
    from tasks.config import WorkerSettings

log = logging.getLogger(__name__)

#: Prefix of the temporary directories deltas are downloaded into.
TEMP_PREFIX = "chromasync-delta-"

#: Maps a target collection's name to its role (which ``{role}_delta_prefix`` to read).
RoleResolver = Callable[[str], CollectionRole]


class S3DeltaMerger:
    """Merges COMPACTION_RUN deltas from S3; one instance per worker process."""

    def __init__(
        self,
        aws: AwsSettings,
        table: str,
        role_of: RoleResolver,
        bucket: str | None = None,
        max_batch_size: int = ChromaTarget.max_batch_size,
        work_dir: Path | str | None = None,
        s3: Any | None = None,
        dynamodb: Any | None = None,
    ) -> None:
        if max_batch_size < 1:
            raise ValueError(f"max_batch_size must be at least 1, got {max_batch_size}")
        self.aws = aws
        self.table = table
        self.role_of = role_of
        self.bucket = bucket
        #: Most ids per Chroma call (Chroma's limit; tests use a small one).
        self.max_batch_size = max_batch_size
        #: Where temporary download directories go (None: the system's temp dir).
        self.work_dir = None if work_dir is None else Path(work_dir)
        injected = {"s3": s3, "dynamodb": dynamodb}
        self._clients: dict[str, Any] = {k: v for k, v in injected.items() if v is not None}

    @classmethod
    def from_settings(
        cls,
        settings: WorkerSettings,
        max_batch_size: int = ChromaTarget.max_batch_size,
        work_dir: Path | str | None = None,
    ) -> S3DeltaMerger:
        """A merger for the configured table, delta bucket and two collections."""
        shared = settings.shared
        return cls(
            shared.aws,
            shared.table,
            shared.role_of,
            settings.delta_bucket,
            max_batch_size,
            work_dir,
        )

    def _client(self, service: str) -> Any:
        """The boto3 client of ``service``, made on first use so building a runtime stays cheap."""
        client = self._clients.get(service)
        if client is None:
            import boto3

            # The run's status is marked on its item, in the source table, which may be
            # elsewhere than S3 (CHROMASYNC_TABLE_ENDPOINT_URL).
            aws = self.aws.for_table() if service == "dynamodb" else self.aws
            client = self._clients[service] = boto3.client(service, **aws.client_kwargs())
        return client

    def __call__(
        self,
        collection: Any,
        change: Change,
        check_lease: LeaseCheck,
        keep: frozenset[str] | None = None,
    ) -> int:
        """Merge the run's delta into ``collection``; return the number of ids upserted.

        ``keep``: merge only these of the delta's ids (the embeddings the table
        still has lines or words for); None merges every id.
        """
        role = CollectionRole(self.role_of(collection.name))
        keys = change.keys
        if keys.run_id is None:
            raise InvalidDelta(f"{change.entity_type} change has no run_id")
        run = RunItem(
            self._client("dynamodb"), self.table, keys.image_id, keys.receipt_id, keys.run_id
        )
        attributes = run.read()
        if attributes is None:
            log.info("%s is gone from the table; nothing to merge", run)
            return 0
        if attributes.get(f"{role}_merge_status") == MERGE_COMPLETED:
            log.info("%s is already merged into %s; skipping", run, collection.name)
            return 0
        raw = attributes.get(f"{role}_delta_prefix")
        if raw is None or raw == "":
            log.info("%s has no %s_delta_prefix; nothing to merge", run, role)
            return 0
        if not isinstance(raw, str):
            raise InvalidDelta(f"{run}: {role}_delta_prefix must be a string, got {raw!r}")
        location = parse_location(raw, self.bucket)
        if self.work_dir is not None:
            self.work_dir.mkdir(parents=True, exist_ok=True)
        workdir = Path(tempfile.mkdtemp(prefix=TEMP_PREFIX, dir=self.work_dir))
        try:
            root = fetch_delta(self._client("s3"), location, workdir)
            count = merge_directory(
                root, collection, str(location), check_lease, keep, self.max_batch_size
            )
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
        check_lease()
        run.mark_merged(role, count)
        log.info(
            "merged %d embeddings of %s from %s into %s", count, run, location, collection.name
        )
        return count
