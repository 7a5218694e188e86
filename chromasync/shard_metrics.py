"""The stream poller's metrics: per-shard lag and records read, in the metrics Redis.

The poller (``producers.poller.StreamPoller``) reports each read of a shard to
its ``on_shard`` hook and knows nothing of Redis; this hook, attached by the
operator's processes (``chromasync run``, ``chromasync poll``), writes the
report with the worker's metrics store, so ``status`` and the exporter read
both from one place.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping

from producers.poller import ShardProgress
from tasks.metrics.catalogue import RECORDS_READ
from tasks.metrics.store import MetricsStore
from tasks.metrics.writes import SHARD_PARTS, Writes

log = logging.getLogger(__name__)

#: Least seconds between two writes of an idle shard's state (the poller polls ~4x/s).
SHARD_REPORT_INTERVAL = 5.0


class ShardMetrics:
    """``StreamPoller(on_shard=ShardMetrics(store))``: per-shard lag and records read.

    An empty read means the shard is caught up (its lag is 0); a read with
    records stores the creation time of the last one, from which the exporter
    computes the lag at scrape time. Idle shards are written at most every
    :data:`SHARD_REPORT_INTERVAL` seconds; closed shards are removed.
    """

    def __init__(self, metrics: MetricsStore | None) -> None:
        self.metrics = metrics
        self._written: dict[str, tuple[float, bool]] = {}

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> ShardMetrics:
        return cls(MetricsStore.from_env(env))

    def __call__(self, progress: ShardProgress) -> None:
        if self.metrics is None:
            return
        try:
            writes = self._writes(progress, time.time())
            if writes and self.metrics.send(writes):
                self._written[progress.shard_id] = (time.monotonic(), progress.records == 0)
        except Exception:  # noqa: BLE001 - metrics never stop the poller
            log.exception("shard metrics failed; polling goes on")

    def _writes(self, progress: ShardProgress, now: float) -> Writes:
        writes = Writes()
        shard = progress.shard_id
        if progress.records:
            writes.inc(RECORDS_READ, (), progress.records)
        if progress.closed:
            writes.shard_deletes.extend(f"{shard}|{part}" for part in SHARD_PARTS)
            self._written.pop(shard, None)
            return writes
        caught_up = progress.records == 0
        last = self._written.get(shard)
        if caught_up and last and last[1] and time.monotonic() - last[0] < SHARD_REPORT_INTERVAL:
            return writes
        writes.shard_fields[f"{shard}|last_read_at"] = repr(now)
        writes.shard_fields[f"{shard}|caught_up"] = "1" if caught_up else "0"
        if progress.last_created_at is not None:
            writes.shard_fields[f"{shard}|last_created_at"] = repr(progress.last_created_at)
        return writes
