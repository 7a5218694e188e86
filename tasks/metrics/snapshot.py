"""The metrics of one deployment as read back from Redis, for ``status`` and the exporter."""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, field

from tasks.metrics.catalogue import METRICS, MetricDef
from tasks.metrics.writes import bucket_field


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
            running += self.buckets.get(bucket_field(bound), 0)
            out.append((bucket_field(bound), float(running)))
        out.append(("+Inf", float(self.count)))
        return out


@dataclass(frozen=True)
class ShardLag:
    """What the stream poller last reported for one shard, from which its lag follows."""

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
    shards: dict[str, ShardLag] = field(default_factory=dict)

    def total(self, metric: MetricDef, **match: str) -> float:
        """Sum of a counter over the label values that match ``match``."""
        index = {name: i for i, name in enumerate(metric.labels)}
        return sum(
            value
            for labels, value in self.counters.get(metric.name, {}).items()
            if all(labels[index[k]] == v for k, v in match.items())
        )

    @classmethod
    def decode(
        cls, metric_hashes: list[dict[str, str]], shard_hash: dict[str, str]
    ) -> MetricsSnapshot:
        """From the hashes of :data:`~tasks.metrics.catalogue.METRICS` (in order) and shards."""
        snapshot = cls()
        for metric, fields in zip(METRICS, metric_hashes, strict=True):
            if metric.kind == "counter":
                snapshot.counters[metric.name] = {
                    tuple(json.loads(k)): float(v) for k, v in fields.items()
                }
            else:
                snapshot.histograms[metric.name] = _histograms(fields)
        snapshot.shards = _shards(shard_hash)
        return snapshot


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


def _shards(fields: dict[str, str]) -> dict[str, ShardLag]:
    values: dict[str, dict[str, str]] = defaultdict(dict)
    for key, value in fields.items():
        shard, _, part = key.rpartition("|")
        values[shard][part] = value
    return {
        shard: ShardLag(
            shard,
            float(v["last_created_at"]) if v.get("last_created_at") else None,
            float(v["last_read_at"]) if v.get("last_read_at") else None,
            v.get("caught_up") == "1",
        )
        for shard, v in values.items()
    }
