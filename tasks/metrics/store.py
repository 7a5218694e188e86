"""The metrics Redis of one deployment: written best effort by every process, read by the exporter.

Why Redis and not a prometheus_client registry in the worker: a worker is a
prefork pool (the task runs in a child process, which Celery may replace at
any time) on possibly several machines, so no single process holds the
numbers, and prometheus_client's multiprocess mode only spans one machine.
Every process instead adds its increments to Redis hashes (``HINCRBY`` and
``HINCRBYFLOAT`` are atomic, so increments from any number of processes
add up), and the exporter reads them at scrape time. A pushgateway would
not do: it keeps the last push per group, so counters from several
processes would overwrite each other.

Layout, under ``chromasync:metrics:{CHROMASYNC_QUEUE_PREFIX}:`` (so several
deployments can share one Redis):

* ``c:{metric}`` — a counter; field = JSON list of label values, value = count;
* ``h:{metric}`` — a histogram with the fixed buckets of its
  :class:`~tasks.metrics.catalogue.MetricDef`; fields ``{labels}|{le}``
  (observations in that bucket, *not* cumulative), ``{labels}|sum`` and
  ``{labels}|count``;
* ``shards`` — the stream poller's per-shard state; fields
  ``{shard}|last_created_at``, ``{shard}|last_read_at``, ``{shard}|caught_up``.

Every key expires :data:`KEY_TTL` after its last write.

Recording is best effort (:mod:`tasks.besteffort`): one pipelined round trip
per call, short socket timeouts, and after a failure a warning (once) and no
attempt for a while. A metrics failure never fails a task or stops the
poller; increments made while Redis is away are lost (counters then
undercount; Prometheus' ``rate()`` copes with that as with a reset).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TYPE_CHECKING

from chromasync.core.config import Settings, env_url
from chromasync.core.urls import redact_url
from tasks.besteffort import BestEffort
from tasks.metrics.catalogue import METRICS
from tasks.metrics.snapshot import MetricsSnapshot
from tasks.metrics.writes import Writes, labels_field

if TYPE_CHECKING:
    import redis

#: Environment variable naming the metrics Redis (``off`` turns recording off).
METRICS_URL_ENV = "CHROMASYNC_METRICS_URL"
#: Used when neither ``CHROMASYNC_METRICS_URL`` nor ``REDIS_URL`` is set.
DEFAULT_METRICS_URL = "redis://127.0.0.1:6379/0"
#: Values of ``CHROMASYNC_METRICS_URL`` that turn recording off.
DISABLED = frozenset({"off", "none", "false", "0"})
#: Socket timeouts of the metrics client: a slow Redis must not slow a task down much.
CONNECT_TIMEOUT = 0.5
SOCKET_TIMEOUT = 1.0
#: Seconds a metrics key lives after its last write. Prometheus takes the reset of a
#: counter idle that long in its stride; keys of deployments (and test runs) that are
#: gone do not pile up in Redis for ever.
KEY_TTL = 7 * 24 * 3600


def metrics_url(env: Mapping[str, str] | None = None) -> str | None:
    """The metrics Redis URL, or None when recording is turned off."""
    env = os.environ if env is None else env
    raw = (env.get(METRICS_URL_ENV) or "").strip()
    if raw.lower() in DISABLED:
        return None
    url = env_url(env, METRICS_URL_ENV, None, {"redis", "rediss"})
    if url is None:
        url = env_url(env, "REDIS_URL", DEFAULT_METRICS_URL, {"redis", "rediss"})
    return url


def namespace(settings: Settings) -> str:
    """Key prefix of one deployment: its queue prefix, so deployments can share a Redis."""
    return f"chromasync:metrics:{settings.queue_prefix}:"


class MetricsStore:
    """The Redis hashes of one deployment: written best effort, read by the exporter."""

    def __init__(self, url: str, namespace: str, client: redis.Redis | None = None) -> None:
        import redis as redis_lib
        from redis.backoff import NoBackoff
        from redis.retry import Retry

        self.url = url
        self.namespace = namespace
        self._client = client or redis_lib.Redis.from_url(
            url,
            socket_timeout=SOCKET_TIMEOUT,
            socket_connect_timeout=CONNECT_TIMEOUT,
            retry=Retry(NoBackoff(), 0),
        )
        self._best_effort = BestEffort("metrics")

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> MetricsStore | None:
        """The store named by the environment; None when ``CHROMASYNC_METRICS_URL=off``."""
        url = metrics_url(env)
        if url is None:
            return None
        return cls(url, namespace(Settings.from_env(env)))

    @property
    def shown_url(self) -> str:
        return redact_url(self.url)

    def key(self, kind: str, name: str = "") -> str:
        return f"{self.namespace}{kind}:{name}" if name else f"{self.namespace}{kind}"

    def send(self, writes: Writes) -> bool:
        """Write increments in one round trip; False when skipped or failed (never raises)."""
        if not writes:
            return True
        return self._best_effort.write(
            lambda: f"Redis at {self.shown_url} ({METRICS_URL_ENV})", lambda: self._write(writes)
        )

    def _write(self, writes: Writes) -> None:
        # MULTI/EXEC: a scrape never sees a bucket counted without its count and sum.
        pipe = self._client.pipeline(transaction=True)
        keys: set[str] = set()
        for (name, labels), amount in writes.counters.items():
            keys.add(self.key("c", name))
            pipe.hincrby(self.key("c", name), labels_field(labels), amount)
        for (name, labels), (buckets, total, count) in writes.histograms.items():
            key, prefix = self.key("h", name), labels_field(labels)
            keys.add(key)
            for bucket, n in buckets.items():
                pipe.hincrby(key, f"{prefix}|{bucket}", n)
            pipe.hincrbyfloat(key, f"{prefix}|sum", total)
            pipe.hincrby(key, f"{prefix}|count", count)
        if writes.shard_fields:
            keys.add(self.key("shards"))
            pipe.hset(self.key("shards"), mapping=writes.shard_fields)
        if writes.shard_deletes:
            pipe.hdel(self.key("shards"), *writes.shard_deletes)
        for key in sorted(keys):
            pipe.expire(key, KEY_TTL)
        pipe.execute()

    def read(self) -> MetricsSnapshot:
        """Every metric of this deployment (raises redis errors: the caller reports them)."""
        pipe = self._client.pipeline(transaction=False)
        for metric in METRICS:
            pipe.hgetall(self.key("c" if metric.kind == "counter" else "h", metric.name))
        pipe.hgetall(self.key("shards"))
        *raw_metrics, raw_shards = pipe.execute()
        return MetricsSnapshot.decode(
            [_text_hash(raw) for raw in raw_metrics], _text_hash(raw_shards)
        )

    def close(self) -> None:
        self._client.close()


def _text_hash(raw: Mapping[bytes | str, bytes | str]) -> dict[str, str]:
    return {_text(k): _text(v) for k, v in raw.items()}


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
