"""Worker settings (Chroma, lock, retries), read from the environment.

Shared settings (AWS endpoint, table, queues, collections) live in
:mod:`chromasync.core.config`; this adds what only the worker needs.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from chromasync.core.config import (
    ConfigError,
    Settings,
    env_bool,
    env_float,
    env_int,
    env_str,
    env_url,
)

#: Where embedded Chroma directories live, one sub-directory per collection.
DEFAULT_CHROMA_DIR = ".chromasync/chroma"
#: Lock lease length in seconds; the heartbeat renews it every third of it.
DEFAULT_LOCK_TTL = 30.0
#: A write is refused when less than this many seconds of lease remain.
DEFAULT_LOCK_SAFETY_MARGIN = 5.0
#: How long a task waits for a busy lock before it retries later.
DEFAULT_LOCK_WAIT = 10.0
#: Retries of a batch before its changes go to the dead-letter queue.
DEFAULT_MAX_RETRIES = 8
#: How long a change may wait for its embedding (delta not merged yet).
DEFAULT_MISSING_EMBEDDING_TIMEOUT = 600.0
#: Env var naming the S3 bucket that holds compaction-run deltas. A run's
#: ``lines_delta_prefix``/``words_delta_prefix`` is either ``s3://bucket/key/``
#: or a bare key prefix resolved against this bucket (see :mod:`tasks.deltas`).
DELTA_BUCKET_ENV = "CHROMASYNC_DELTA_BUCKET"
#: S3 bucket of collection snapshots (:mod:`tasks.snapshots`). Bucket names are global
#: on AWS, so set ``CHROMASYNC_SNAPSHOT_BUCKET`` there; locally (``AWS_ENDPOINT_URL``
#: set) the default bucket is created on first publish.
DEFAULT_SNAPSHOT_BUCKET = "chromasync-snapshots"
#: Snapshot versions kept per collection; older ones go once a newer one is promoted.
DEFAULT_SNAPSHOT_KEEP = 5
#: SQS's longest message delay, seconds: a retry on a standard queue waits in SQS
#: (``DelaySeconds``) for its backoff, so the backoff cap may not exceed it.
SQS_MAX_DELAY = 900
#: S3's rule for bucket names (3-63 lowercase letters, digits, dots and hyphens).
_BUCKET_NAME = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")


@dataclass(frozen=True)
class WorkerSettings:
    shared: Settings
    #: ``http://host:port`` of a Chroma server; None means embedded directories.
    chroma_url: str | None
    chroma_dir: Path
    lock_url: str
    lock_ttl: float
    lock_safety_margin: float
    lock_wait: float
    max_retries: int
    retry_backoff_base: float
    retry_backoff_max: float
    missing_embedding_timeout: float
    #: Most ids per Chroma write call (None: Chroma's own max batch size).
    write_chunk: int | None
    #: JSON-lines file recording lock holds and writes (None: off).
    audit_log: str | None
    #: Bucket for bare delta prefixes (``CHROMASYNC_DELTA_BUCKET``); None: only ``s3://`` ones.
    delta_bucket: str | None = None
    #: Bucket of collection snapshots (``CHROMASYNC_SNAPSHOT_BUCKET``).
    snapshot_bucket: str = DEFAULT_SNAPSHOT_BUCKET
    #: Newest snapshot versions kept per collection (``CHROMASYNC_SNAPSHOT_KEEP``).
    snapshot_keep: int = DEFAULT_SNAPSHOT_KEEP
    #: Restore the latest snapshot into an empty Chroma directory before the worker
    #: consumes (``CHROMASYNC_RESTORE_ON_START``).
    restore_on_start: bool = False
    #: The ``CHROMASYNC_*`` variables as read: a sink reads its own settings from them
    #: (``CHROMASYNC_DASHBOARD_TABLE``...), so adding a sink adds nothing here.
    sink_env: Mapping[str, str] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> WorkerSettings:
        env = os.environ if env is None else env
        shared = Settings.from_env(env)
        default_lock = f"dynamodb://{shared.table}-locks"
        lock_url = env_url(
            env, "CHROMASYNC_LOCK_URL", default_lock, {"redis", "rediss", "dynamodb", "memory"}
        )
        assert lock_url is not None
        ttl = env_float(env, "CHROMASYNC_LOCK_TTL", DEFAULT_LOCK_TTL, minimum=0.1)
        margin = env_float(env, "CHROMASYNC_LOCK_SAFETY_MARGIN", DEFAULT_LOCK_SAFETY_MARGIN)
        if margin >= ttl:
            raise ConfigError(
                f"CHROMASYNC_LOCK_SAFETY_MARGIN={margin} must be smaller than "
                f"CHROMASYNC_LOCK_TTL={ttl}"
            )
        delta_bucket = env_str(env, DELTA_BUCKET_ENV, "") or None
        if delta_bucket and ("/" in delta_bucket or ":" in delta_bucket):
            raise ConfigError(
                f"{DELTA_BUCKET_ENV}={delta_bucket!r} must be a bare bucket name "
                "(for example 'receipt-deltas'), not a URL or a path"
            )
        snapshot_bucket = env_str(env, "CHROMASYNC_SNAPSHOT_BUCKET", DEFAULT_SNAPSHOT_BUCKET)
        if not _BUCKET_NAME.fullmatch(snapshot_bucket):
            raise ConfigError(
                f"CHROMASYNC_SNAPSHOT_BUCKET={snapshot_bucket!r} is not a valid S3 bucket name "
                "(3-63 lowercase letters, digits, '.' and '-'; for example 'receipt-snapshots')"
            )
        lock_wait = env_float(env, "CHROMASYNC_LOCK_WAIT", DEFAULT_LOCK_WAIT)
        backoff_base = env_float(env, "CHROMASYNC_RETRY_BACKOFF_BASE", 1.0)
        backoff_max = env_float(env, "CHROMASYNC_RETRY_BACKOFF_MAX", 60.0)
        check_timing(shared, lock_wait, backoff_base, backoff_max)
        return cls(
            shared=shared,
            chroma_url=env_url(env, "CHROMASYNC_CHROMA_URL", None, {"http", "https"}),
            chroma_dir=Path(env_str(env, "CHROMASYNC_CHROMA_DIR", DEFAULT_CHROMA_DIR)),
            lock_url=lock_url,
            lock_ttl=ttl,
            lock_safety_margin=margin,
            lock_wait=lock_wait,
            max_retries=env_int(env, "CHROMASYNC_MAX_RETRIES", DEFAULT_MAX_RETRIES),
            retry_backoff_base=backoff_base,
            retry_backoff_max=backoff_max,
            audit_log=env.get("CHROMASYNC_AUDIT_LOG") or None,
            write_chunk=env_int(env, "CHROMASYNC_WRITE_CHUNK", 0, minimum=0) or None,
            missing_embedding_timeout=env_float(
                env, "CHROMASYNC_MISSING_EMBEDDING_TIMEOUT", DEFAULT_MISSING_EMBEDDING_TIMEOUT
            ),
            delta_bucket=delta_bucket,
            snapshot_bucket=snapshot_bucket,
            snapshot_keep=env_int(
                env, "CHROMASYNC_SNAPSHOT_KEEP", DEFAULT_SNAPSHOT_KEEP, minimum=1
            ),
            restore_on_start=env_bool(env, "CHROMASYNC_RESTORE_ON_START", False),
            sink_env={k: v for k, v in env.items() if k.startswith("CHROMASYNC_")},
        )


def check_timing(
    shared: Settings, lock_wait: float, backoff_base: float, backoff_max: float
) -> None:
    """Refuse settings whose time bounds contradict the queue's visibility timeout.

    A received message is hidden for ``CHROMASYNC_VISIBILITY_TIMEOUT``; if the
    worker still holds it after that, SQS hands it out again and the work is
    done (and dead-lettered) twice. What a worker holds a message for:

    * the lock wait, before giving up on a busy lock: it must be shorter;
    * on a FIFO queue, a retry's countdown too (FIFO takes no per-message delay,
      so the worker holds the retry): lock wait plus backoff cap must be shorter.

    On a standard queue a retry waits in SQS (``DelaySeconds``), received only
    when due, so its backoff is bounded by SQS's longest delay instead. The time
    a batch takes to apply is not known here: keep the timeout well above it
    (docs/operations.md, "Visibility timeout").
    """
    visibility = shared.visibility_timeout
    if backoff_base > backoff_max:
        raise ConfigError(
            f"CHROMASYNC_RETRY_BACKOFF_BASE={backoff_base} must not exceed "
            f"CHROMASYNC_RETRY_BACKOFF_MAX={backoff_max}"
        )
    if lock_wait >= visibility:
        raise ConfigError(
            f"CHROMASYNC_LOCK_WAIT={lock_wait} must be shorter than "
            f"CHROMASYNC_VISIBILITY_TIMEOUT={visibility}: a task still waiting for the lock "
            "when its message becomes visible again would be handed out a second time"
        )
    if shared.fifo and lock_wait + backoff_max >= visibility:
        raise ConfigError(
            f"with CHROMASYNC_FIFO, CHROMASYNC_LOCK_WAIT={lock_wait} plus "
            f"CHROMASYNC_RETRY_BACKOFF_MAX={backoff_max} must be shorter than "
            f"CHROMASYNC_VISIBILITY_TIMEOUT={visibility}: a FIFO queue takes no message delay, "
            "so the worker holds a retry for its backoff"
        )
    if not shared.fifo and backoff_max > SQS_MAX_DELAY:
        raise ConfigError(
            f"CHROMASYNC_RETRY_BACKOFF_MAX={backoff_max} exceeds SQS's longest message delay "
            f"({SQS_MAX_DELAY} s), which holds a retry until it is due"
        )
