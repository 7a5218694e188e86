"""Increments gathered in process, then sent in one round trip by ``MetricsStore.send``.

The field encodings are shared with :mod:`tasks.metrics.snapshot`, which
reads the same hash fields back.
"""

from __future__ import annotations

import bisect
import json
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from tasks.metrics.catalogue import MetricDef

#: Fields of one shard in the ``shards`` hash (``{shard}|{part}``).
SHARD_PARTS = ("last_created_at", "last_read_at", "caught_up")


def labels_field(labels: Iterable[str]) -> str:
    """The hash field of a label tuple: a compact JSON list."""
    return json.dumps(list(labels), separators=(",", ":"))


def bucket_field(bound: float) -> str:
    """The ``le`` text of a bucket bound, as Prometheus shows it."""
    return repr(float(bound))


@dataclass
class Writes:
    """Counter increments, histogram observations and shard fields of one round trip."""

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
        bucket = bucket_field(metric.buckets[index]) if index < len(metric.buckets) else "+Inf"
        buckets, total, count = self.histograms.get((metric.name, labels), ({}, 0.0, 0))
        buckets[bucket] = buckets.get(bucket, 0) + 1
        self.histograms[(metric.name, labels)] = (buckets, total + value, count + 1)

    def __bool__(self) -> bool:
        return bool(self.counters or self.histograms or self.shard_fields or self.shard_deletes)
