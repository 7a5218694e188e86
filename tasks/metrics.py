"""Metrics of the worker, the stream poller and ``chromasync run``, kept in Redis for the exporter.

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
  :class:`MetricDef`; fields ``{labels}|{le}`` (observations in that bucket,
  *not* cumulative), ``{labels}|sum`` and ``{labels}|count``;
* ``shards`` — the stream poller's per-shard state; fields
  ``{shard}|last_created_at``, ``{shard}|last_read_at``, ``{shard}|caught_up``.

Every key expires :data:`KEY_TTL` after its last write.

Recording is best effort: one pipelined round trip per call, short socket
timeouts, and after a failure a warning (once) and no attempt for
:data:`RETRY_AFTER` seconds. A metrics failure never fails a task or stops
the poller; increments made while Redis is away are lost (counters then
undercount; Prometheus' ``rate()`` copes with that as with a reset).

docs/metrics.md describes every metric.
"""

from __future__ import annotations

import bisect
import json
import logging
import os
import threading
import time
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from chromasync.core.config import ConfigError, Settings, env_url
from chromasync.core.contract import ChangeBatch
from chromasync.core.entities import EntityType

if TYPE_CHECKING:
    import redis

    from tasks.runtime import BatchOutcome

log = logging.getLogger(__name__)

#: Environment variable naming the metrics Redis (``off`` turns recording off).
METRICS_URL_ENV = "CHROMASYNC_METRICS_URL"
#: Used when neither ``CHROMASYNC_METRICS_URL`` nor ``REDIS_URL`` is set.
DEFAULT_METRICS_URL = "redis://127.0.0.1:6379/0"
#: Values of ``CHROMASYNC_METRICS_URL`` that turn recording off.
DISABLED = frozenset({"off", "none", "false", "0"})
#: Seconds without any attempt after a failed write (a dead Redis costs nothing per task).
RETRY_AFTER = 30.0
#: Socket timeouts of the metrics client: a slow Redis must not slow a task down much.
CONNECT_TIMEOUT = 0.5
SOCKET_TIMEOUT = 1.0
#: Seconds a metrics key lives after its last write. Prometheus takes the reset of a
#: counter idle that long in its stride; keys of deployments (and test runs) that are
#: gone do not pile up in Redis for ever.
KEY_TTL = 7 * 24 * 3600
#: Label value for an entity type or event name a payload does not give (or gives wrongly).
UNKNOWN = "unknown"
#: Event names the contract knows; anything else is counted as :data:`UNKNOWN`.
EVENT_NAMES = frozenset({"INSERT", "MODIFY", "REMOVE"})
_ENTITY_NAMES = frozenset(e.value for e in EntityType)

#: Buckets (seconds) of lock waits: mostly immediate, up to CHROMASYNC_LOCK_WAIT (10 s).
LOCK_WAIT_BUCKETS = (0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
#: Buckets (seconds) of lock holds and batch applies: a batch is ms to tens of seconds.
DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
#: Buckets (seconds) of end-to-end lag: about a second when healthy, hours in a backlog.
LAG_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0)

Kind = Literal["counter", "histogram"]


@dataclass(frozen=True)
class MetricDef:
    """One metric kept in Redis. ``name`` is the exposed name without ``_total``."""

    name: str
    kind: Kind
    labels: tuple[str, ...]
    help: str
    buckets: tuple[float, ...] = ()


CHANGE_LABELS = ("collection", "entity", "event")

RECEIVED = MetricDef(
    "chromasync_changes_received",
    "counter",
    CHANGE_LABELS,
    "Changes delivered to a worker (each delivery counts, retries and redeliveries too).",
)
APPLIED = MetricDef(
    "chromasync_changes_applied",
    "counter",
    CHANGE_LABELS,
    "Changes whose current state was written to Chroma.",
)
FAILED = MetricDef(
    "chromasync_changes_failed",
    "counter",
    CHANGE_LABELS,
    "Changes of a delivery that were not applied: sent back for a retry or dead-lettered.",
)
RETRIED = MetricDef(
    "chromasync_changes_retried",
    "counter",
    CHANGE_LABELS,
    "Changes sent back to their queue with a backoff (busy lock, outage, missing embedding).",
)
DEAD_LETTERED = MetricDef(
    "chromasync_changes_dead_lettered",
    "counter",
    CHANGE_LABELS,
    "Changes written to the collection's dead-letter queue.",
)
TASK_ERRORS = MetricDef(
    "chromasync_task_errors",
    "counter",
    ("collection", "error"),
    "Failures that made a worker retry or dead-letter changes, by exception type.",
)
LOCK_WAIT = MetricDef(
    "chromasync_lock_wait_seconds",
    "histogram",
    ("collection",),
    "Time from asking for the collection's lock to holding it (acquired leases only).",
    LOCK_WAIT_BUCKETS,
)
LOCK_HOLD = MetricDef(
    "chromasync_lock_hold_seconds",
    "histogram",
    ("collection",),
    "Time a batch held the collection's lock (re-read, plan, write).",
    DURATION_BUCKETS,
)
BATCH_APPLY = MetricDef(
    "chromasync_batch_apply_seconds",
    "histogram",
    ("collection",),
    "Time to apply one batch, lock wait and release included.",
    DURATION_BUCKETS,
)
LAG = MetricDef(
    "chromasync_end_to_end_lag_seconds",
    "histogram",
    ("collection", "entity"),
    "From the stream record's approximate creation time to the change applied in Chroma.",
    LAG_BUCKETS,
)
RECORDS_READ = MetricDef(
    "chromasync_stream_records_read",
    "counter",
    (),
    "Stream records read by the poller (all shards).",
)
RESTARTS = MetricDef(
    "chromasync_restarts",
    "counter",
    ("component",),
    "Restarts by `chromasync run` of a component that had stopped: `worker:COLLECTION` "
    "(a celery worker process) or `poller` (the stream poller thread).",
)

#: Every metric kept in Redis, in the order the exporter shows them.
METRICS: tuple[MetricDef, ...] = (
    RECEIVED,
    APPLIED,
    FAILED,
    RETRIED,
    DEAD_LETTERED,
    TASK_ERRORS,
    LOCK_WAIT,
    LOCK_HOLD,
    BATCH_APPLY,
    LAG,
    RECORDS_READ,
    RESTARTS,
)


# -- labels --------------------------------------------------------------------------------


def _label(value: Any, known: frozenset[str]) -> str:
    return value if isinstance(value, str) and value in known else UNKNOWN


def change_labels(payload: Any) -> list[tuple[str, str]]:
    """(entity, event) of every change of a raw payload, whatever shape it has.

    Only known entity types and event names become label values (anything
    else is ``unknown``), so a malformed payload cannot blow up cardinality.
    A payload without a list of changes counts as one unknown change.
    """
    changes = payload.get("changes") if isinstance(payload, dict) else None
    if not isinstance(changes, list) or not changes:
        return [(UNKNOWN, UNKNOWN)]
    labels = []
    for change in changes:
        raw = change if isinstance(change, dict) else {}
        labels.append(
            (
                _label(raw.get("entity_type"), _ENTITY_NAMES),
                _label(raw.get("event_name"), EVENT_NAMES),
            )
        )
    return labels


def _field(labels: Iterable[str]) -> str:
    return json.dumps(list(labels), separators=(",", ":"))


def _le(bound: float) -> str:
    return repr(float(bound))


# -- recording -----------------------------------------------------------------------------


@dataclass
class Writes:
    """Increments gathered in process, then sent in one round trip by :meth:`MetricsStore.send`."""

    counters: dict[tuple[str, tuple[str, ...]], int] = field(
        default_factory=lambda: defaultdict(int)
    )
    #: (metric, labels) → (bucket field → count, sum, count)
    histograms: dict[tuple[str, tuple[str, ...]], tuple[dict[str, int], float, int]] = field(
        default_factory=dict
    )
    #: Field → value of the ``shards`` hash (keys typed Any for redis-py's HSET mapping).
    shard_fields: dict[Any, str] = field(default_factory=dict)
    shard_deletes: list[str] = field(default_factory=list)

    def inc(self, metric: MetricDef, labels: tuple[str, ...], amount: int = 1) -> None:
        assert metric.kind == "counter" and len(labels) == len(metric.labels), metric.name
        self.counters[(metric.name, labels)] += amount

    def observe(self, metric: MetricDef, labels: tuple[str, ...], value: float) -> None:
        assert metric.kind == "histogram" and len(labels) == len(metric.labels), metric.name
        value = max(0.0, float(value))
        index = bisect.bisect_left(metric.buckets, value)
        bucket = _le(metric.buckets[index]) if index < len(metric.buckets) else "+Inf"
        buckets, total, count = self.histograms.get((metric.name, labels), ({}, 0.0, 0))
        buckets[bucket] = buckets.get(bucket, 0) + 1
        self.histograms[(metric.name, labels)] = (buckets, total + value, count + 1)

    def __bool__(self) -> bool:
        return bool(self.counters or self.histograms or self.shard_fields or self.shard_deletes)


@dataclass(frozen=True)
class Histogram:
    """A histogram read back: non-cumulative counts per bucket bound, sum, count."""

    buckets: dict[str, int]
    sum: float
    count: int

    def cumulative(self, bounds: tuple[float, ...]) -> list[tuple[str, float]]:
        """Prometheus buckets: cumulative counts per ``le``, ending with ``+Inf`` = count."""
        out: list[tuple[str, float]] = []
        running = 0
        for bound in bounds:
            running += self.buckets.get(_le(bound), 0)
            out.append((_le(bound), float(running)))
        out.append(("+Inf", float(self.count)))
        return out


@dataclass(frozen=True)
class ShardState:
    """What the poller last reported for one shard."""

    shard_id: str
    last_created_at: float | None
    last_read_at: float | None
    caught_up: bool

    def lag(self, now: float) -> float | None:
        """Now minus the creation time of the last record read; 0 when the shard is caught up."""
        if self.caught_up:
            return 0.0
        if self.last_created_at is None:
            return None
        return max(0.0, now - self.last_created_at)


@dataclass
class MetricsSnapshot:
    counters: dict[str, dict[tuple[str, ...], float]] = field(default_factory=dict)
    histograms: dict[str, dict[tuple[str, ...], Histogram]] = field(default_factory=dict)
    shards: dict[str, ShardState] = field(default_factory=dict)

    def total(self, metric: MetricDef, **match: str) -> float:
        """Sum of a counter over the label values that match ``match``."""
        index = {name: i for i, name in enumerate(metric.labels)}
        return sum(
            value
            for labels, value in self.counters.get(metric.name, {}).items()
            if all(labels[index[k]] == v for k, v in match.items())
        )


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


def redact(url: str) -> str:
    from tasks.locks.backends.redis import redact_url

    return redact_url(url)


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
        self._lock = threading.Lock()
        self._paused_until = 0.0
        self._warned = False

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> MetricsStore | None:
        """The store named by the environment; None when ``CHROMASYNC_METRICS_URL=off``."""
        url = metrics_url(env)
        if url is None:
            return None
        return cls(url, namespace(Settings.from_env(env)))

    @property
    def shown_url(self) -> str:
        return redact(self.url)

    def key(self, kind: str, name: str = "") -> str:
        return f"{self.namespace}{kind}:{name}" if name else f"{self.namespace}{kind}"

    # writing

    def send(self, writes: Writes) -> bool:
        """Write increments in one round trip; False (and logged once) when Redis failed."""
        if not writes:
            return True
        now = time.monotonic()
        if now < self._paused_until:
            return False
        try:
            # MULTI/EXEC: a scrape never sees a bucket counted without its count and sum.
            pipe = self._client.pipeline(transaction=True)
            keys: set[str] = set()
            for (name, labels), amount in writes.counters.items():
                keys.add(self.key("c", name))
                pipe.hincrby(self.key("c", name), _field(labels), amount)
            for (name, labels), (buckets, total, count) in writes.histograms.items():
                key, prefix = self.key("h", name), _field(labels)
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
        except Exception as exc:  # noqa: BLE001 - metrics must never fail the caller
            with self._lock:
                self._paused_until = time.monotonic() + RETRY_AFTER
                if not self._warned:
                    self._warned = True
                    log.warning(
                        "metrics are not recorded: Redis at %s (%s) failed: %s; "
                        "retrying every %.0fs, work goes on",
                        self.shown_url,
                        METRICS_URL_ENV,
                        exc,
                        RETRY_AFTER,
                    )
            return False
        if self._warned:
            with self._lock:
                self._warned = False
            log.info("metrics are recorded again in Redis at %s", self.shown_url)
        return True

    # reading

    def read(self) -> MetricsSnapshot:
        """Every metric of this deployment (raises redis errors: the caller reports them)."""
        pipe = self._client.pipeline(transaction=False)
        for metric in METRICS:
            pipe.hgetall(self.key("c" if metric.kind == "counter" else "h", metric.name))
        pipe.hgetall(self.key("shards"))
        *raw_metrics, raw_shards = pipe.execute()
        snapshot = MetricsSnapshot()
        for metric, raw in zip(METRICS, raw_metrics, strict=True):
            fields = {_text(k): _text(v) for k, v in raw.items()}
            if metric.kind == "counter":
                snapshot.counters[metric.name] = {
                    tuple(json.loads(k)): float(v) for k, v in fields.items()
                }
            else:
                snapshot.histograms[metric.name] = _histograms(fields)
        snapshot.shards = _shards({_text(k): _text(v) for k, v in raw_shards.items()})
        return snapshot

    def close(self) -> None:
        self._client.close()


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _histograms(fields: dict[str, str]) -> dict[tuple[str, ...], Histogram]:
    parts: dict[str, dict[str, str]] = defaultdict(dict)
    for key, value in fields.items():
        labels, _, part = key.rpartition("|")
        parts[labels][part] = value
    out = {}
    for labels, values in parts.items():
        buckets = {k: int(v) for k, v in values.items() if k not in ("sum", "count")}
        out[tuple(json.loads(labels))] = Histogram(
            buckets, float(values.get("sum", 0)), int(values.get("count", 0))
        )
    return out


def _shards(fields: dict[str, str]) -> dict[str, ShardState]:
    values: dict[str, dict[str, str]] = defaultdict(dict)
    for key, value in fields.items():
        shard, _, part = key.rpartition("|")
        values[shard][part] = value
    return {
        shard: ShardState(
            shard,
            float(v["last_created_at"]) if v.get("last_created_at") else None,
            float(v["last_read_at"]) if v.get("last_read_at") else None,
            v.get("caught_up") == "1",
        )
        for shard, v in values.items()
    }


def namespace(settings: Settings) -> str:
    """Key prefix of one deployment: its queue prefix, so deployments can share a Redis."""
    return f"chromasync:metrics:{settings.queue_prefix}:"


# -- the worker's hooks (tasks.compaction) -------------------------------------------------

_store: MetricsStore | None = None
_store_built = False
_store_lock = threading.Lock()


def store() -> MetricsStore | None:
    """This process's store, built on first use (after the pool forked); None when off."""
    global _store, _store_built
    if not _store_built:
        with _store_lock:
            if not _store_built:
                try:
                    _store = MetricsStore.from_env()
                except ConfigError as exc:
                    log.warning("metrics are off: %s", exc)
                    _store = None
                _store_built = True
    return _store


def reset_store() -> None:
    """Forget the process's store (tests that change the environment)."""
    global _store, _store_built
    if _store is not None:
        _store.close()
    _store, _store_built = None, False


def _send(writes: Writes) -> None:
    target = store()
    if target is not None:
        target.send(writes)


def _guarded(hook: str, build: Any, *args: Any) -> None:
    """Run a hook so that no error of ours, even a bug, reaches the task."""
    try:
        writes = Writes()
        build(writes, *args)
        _send(writes)
    except Exception:  # noqa: BLE001 - metrics never fail a task
        log.exception("metrics hook %s failed; the task goes on", hook)


def _received(writes: Writes, collection: str, payload: Any) -> None:
    for entity, event in change_labels(payload):
        writes.inc(RECEIVED, (collection, entity, event))


def changes_received(collection: str, payload: Any) -> None:
    """Count every change of a delivered payload (before it is validated)."""
    _guarded("changes_received", _received, collection, payload)


def _failed(
    writes: Writes, collection: str, payload: Any, exc: BaseException, outcome: MetricDef
) -> None:
    for entity, event in change_labels(payload):
        writes.inc(FAILED, (collection, entity, event))
        writes.inc(outcome, (collection, entity, event))
    writes.inc(TASK_ERRORS, (collection, type(exc).__name__))


def changes_dead_lettered(collection: str, payload: Any, exc: BaseException) -> None:
    """Count the changes of a payload just written to the dead-letter queue."""
    _guarded("changes_dead_lettered", _failed, collection, payload, exc, DEAD_LETTERED)


def changes_retried(collection: str, payload: Any, exc: BaseException) -> None:
    """Count the changes of a payload just sent back to its queue for a retry."""
    _guarded("changes_retried", _failed, collection, payload, exc, RETRIED)


def _applied(writes: Writes, batch: ChangeBatch, outcome: BatchOutcome, seconds: float) -> None:
    collection = batch.collection
    applied_at = time.time()
    for index, change in enumerate(batch.changes):
        if index in outcome.waiting or index in outcome.failed:
            continue
        writes.inc(APPLIED, (collection, change.entity_type.value, change.event_name))
        if change.approximate_creation_time is not None:
            writes.observe(
                LAG,
                (collection, change.entity_type.value),
                applied_at - change.approximate_creation_time,
            )
    writes.observe(LOCK_WAIT, (collection,), outcome.lock_wait)
    writes.observe(LOCK_HOLD, (collection,), outcome.lock_hold)
    writes.observe(BATCH_APPLY, (collection,), seconds)


def batch_applied(batch: ChangeBatch, outcome: BatchOutcome, seconds: float) -> None:
    """Count applied changes and observe lock wait/hold, batch time and end-to-end lag."""
    _guarded("batch_applied", _applied, batch, outcome, seconds)


# -- chromasync run's supervisor (chromasync.supervisor) -----------------------------------


def _restarted(writes: Writes, component: str) -> None:
    writes.inc(RESTARTS, (component,))


def component_restarted(component: str) -> None:
    """Count one restart of a worker or the poller by ``chromasync run``."""
    _guarded("component_restarted", _restarted, component)
