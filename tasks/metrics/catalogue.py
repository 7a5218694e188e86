"""Every metric kept in Redis: name, kind, labels, help and histogram buckets.

docs/metrics.md describes each one; the exporter shows them in the order of
:data:`METRICS`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from chromasync.core.entities import REGISTRY

#: Label value for an entity type or event name a payload does not give (or gives wrongly).
UNKNOWN = "unknown"
#: Event names the contract knows; anything else is counted as :data:`UNKNOWN`.
EVENT_NAMES = frozenset({"INSERT", "MODIFY", "REMOVE"})
#: Entity type names the registry knows; anything else is counted as :data:`UNKNOWN`.
ENTITY_NAMES = frozenset(str(spec.entity_type) for spec in REGISTRY)

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


#: Labels of the per-change counters.
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
                _label(raw.get("entity_type"), ENTITY_NAMES),
                _label(raw.get("event_name"), EVENT_NAMES),
            )
        )
    return labels
