"""``chromasync exporter``: serve every chromasync metric on ``/metrics`` for Prometheus.

Nothing is kept in this process: at each scrape a custom collector reads the
counters and histograms the workers and the poller add up in Redis
(:mod:`tasks.metrics.store`), asks SQS for the depth of every queue, and asks
the lock store for each collection's lock and last applied batch
(:mod:`tasks.progress`), all through :mod:`chromasync.probes`. Run one
exporter per deployment, anywhere that reaches those services; a service
that does not answer turns its ``chromasync_source_up`` to 0 and the rest of
the scrape still succeeds.
docs/metrics.md lists every metric.
"""

from __future__ import annotations

import argparse
import errno
import logging
import sys
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from chromasync.commands.common import port_number, stop_on_signals
from chromasync.core.exits import EXIT_CONFIG

if TYPE_CHECKING:
    from prometheus_client.core import Metric

    from tasks.config import WorkerSettings

log = logging.getLogger(__name__)

#: Port of the exporter; 9808 is not taken in Prometheus' list of default exporter ports.
DEFAULT_PORT = 9808
#: Address the exporter listens on; 127.0.0.1 unless it is scraped from another machine.
DEFAULT_ADDRESS = "127.0.0.1"


def register(sub: Any) -> None:
    exporter = sub.add_parser(
        "exporter",
        help="serve Prometheus metrics (queues, changes, locks, lag) on /metrics",
        description="Serve /metrics for Prometheus: counters and histograms the workers and "
        "the poller record in Redis (CHROMASYNC_METRICS_URL), SQS depth of every queue and "
        "dead-letter queue, lock holders and the last applied batch per collection, all "
        "read at scrape time. docs/metrics.md lists every metric.",
    )
    exporter.add_argument(
        "--port", type=port_number, default=DEFAULT_PORT, help=f"port (default {DEFAULT_PORT})"
    )
    exporter.add_argument(
        "--address",
        default=DEFAULT_ADDRESS,
        help=f"address to listen on (default {DEFAULT_ADDRESS}; 0.0.0.0 for every interface)",
    )
    exporter.set_defaults(func=main)


class ChromasyncCollector:
    """A prometheus_client collector that reads everything at scrape time."""

    def __init__(self, settings: WorkerSettings) -> None:
        from chromasync import probes

        self.settings = settings
        self.sqs = probes.sqs_client(settings.shared)
        self.metrics = probes.metrics_store()
        self.locks, _where = probes.lock_backend(settings)
        self.progress = probes.progress_store(settings)

    def collect(self) -> Iterator[Metric]:
        from prometheus_client.core import GaugeMetricFamily

        started = time.monotonic()
        up = GaugeMetricFamily(
            "chromasync_source_up",
            "1 when the service answered this scrape, 0 when it did not (see the log).",
            labels=["source"],
        )
        for source, part in (
            ("metrics", self._metrics),
            ("sqs", self._queues),
            ("lock_store", self._locks),
        ):
            families: list[Metric] = []
            try:
                part(families)
            except Exception as exc:  # noqa: BLE001 - one source down must not fail the scrape
                log.warning("scrape of %s failed: %s", source, exc)
                up.add_metric([source], 0)
            else:
                up.add_metric([source], 1)
            yield from families
        yield up
        yield GaugeMetricFamily(
            "chromasync_exporter_scrape_seconds",
            "Time this scrape took to ask every service.",
            value=time.monotonic() - started,
        )

    def _metrics(self, out: list[Metric]) -> None:
        from prometheus_client.core import (
            CounterMetricFamily,
            GaugeMetricFamily,
            HistogramMetricFamily,
        )

        from tasks.metrics.catalogue import METRICS

        if self.metrics is None:
            return
        snapshot = self.metrics.read()
        for metric in METRICS:
            labels = list(metric.labels)
            if metric.kind == "counter":
                counter = CounterMetricFamily(metric.name, metric.help, labels=labels)
                for values, value in sorted(snapshot.counters.get(metric.name, {}).items()):
                    counter.add_metric(list(values), value)
                out.append(counter)
            else:
                histogram = HistogramMetricFamily(metric.name, metric.help, labels=labels)
                for values, data in sorted(snapshot.histograms.get(metric.name, {}).items()):
                    histogram.add_metric(
                        list(values), data.cumulative(metric.buckets), sum_value=data.sum
                    )
                out.append(histogram)
        now = time.time()
        lag = GaugeMetricFamily(
            "chromasync_stream_poller_lag_seconds",
            "Now minus the approximate creation time of the last record read from the shard; "
            "0 when the last read found the shard caught up.",
            labels=["shard"],
        )
        read = GaugeMetricFamily(
            "chromasync_stream_last_read_timestamp_seconds",
            "When the poller last read the shard (epoch seconds): a stale value means no poller.",
            labels=["shard"],
        )
        for shard in sorted(snapshot.shards.values(), key=lambda s: s.shard_id):
            shard_lag = shard.lag(now)
            if shard_lag is not None:
                lag.add_metric([shard.shard_id], shard_lag)
            if shard.last_read_at is not None:
                read.add_metric([shard.shard_id], shard.last_read_at)
        out.extend([lag, read])

    def _queues(self, out: list[Metric]) -> None:
        from prometheus_client.core import GaugeMetricFamily

        from chromasync.provision import queue_depths

        labels = ["queue", "collection", "kind"]
        gauges = {
            "visible": GaugeMetricFamily(
                "chromasync_queue_visible_messages",
                "Messages waiting in the queue (SQS ApproximateNumberOfMessages).",
                labels=labels,
            ),
            "in_flight": GaugeMetricFamily(
                "chromasync_queue_inflight_messages",
                "Messages received but not yet deleted (ApproximateNumberOfMessagesNotVisible).",
                labels=labels,
            ),
            "delayed": GaugeMetricFamily(
                "chromasync_queue_delayed_messages",
                "Messages not yet deliverable (ApproximateNumberOfMessagesDelayed).",
                labels=labels,
            ),
        }
        for depth in queue_depths(self.settings.shared, self.sqs):
            if not depth.exists:
                continue
            values = [depth.name, depth.collection or "", depth.kind]
            gauges["visible"].add_metric(values, depth.visible)
            gauges["in_flight"].add_metric(values, depth.in_flight)
            gauges["delayed"].add_metric(values, depth.delayed)
        out.extend(gauges.values())

    def _locks(self, out: list[Metric]) -> None:
        from prometheus_client.core import GaugeMetricFamily

        from chromasync.probes import last_applied, lock_infos

        collections = list(self.settings.shared.targets)
        held = GaugeMetricFamily(
            "chromasync_lock_held",
            "1 while a worker holds the collection's lock.",
            labels=["collection"],
        )
        remaining = GaugeMetricFamily(
            "chromasync_lock_lease_remaining_seconds",
            "Seconds left on the current lease (absent when the lock is free).",
            labels=["collection"],
        )
        fence = GaugeMetricFamily(
            "chromasync_lock_fence",
            "Fencing number of the collection's lock: it goes up by one per acquisition.",
            labels=["collection"],
        )
        for collection, info in lock_infos(self.locks, collections).items():
            held.add_metric([collection], 1 if info is not None and info.owner else 0)
            if info is not None:
                fence.add_metric([collection], info.fence)
                if info.owner and info.remaining is not None:
                    remaining.add_metric([collection], info.remaining)
        applied_at = GaugeMetricFamily(
            "chromasync_last_applied_timestamp_seconds",
            "When the collection's last batch was applied (epoch seconds).",
            labels=["collection"],
        )
        applied_lag = GaugeMetricFamily(
            "chromasync_last_applied_lag_seconds",
            "End-to-end lag of the newest change of the collection's last applied batch.",
            labels=["collection"],
        )
        for collection, batch in last_applied(self.progress, collections).items():
            if batch is None:
                continue
            applied_at.add_metric([collection], batch.applied_at)
            if batch.lag is not None:
                applied_lag.add_metric([collection], batch.lag)
        out.extend([held, remaining, fence, applied_at, applied_lag])


def main(args: argparse.Namespace) -> int:
    from prometheus_client import CollectorRegistry, start_http_server

    from tasks.config import WorkerSettings

    registry = CollectorRegistry()
    registry.register(ChromasyncCollector(WorkerSettings.from_env()))
    try:
        server, thread = start_http_server(args.port, addr=args.address, registry=registry)
    except OSError as exc:
        reason = "the port is in use" if exc.errno == errno.EADDRINUSE else exc.strerror
        print(
            f"chromasync exporter: cannot listen on {args.address}:{args.port}: {reason}",
            file=sys.stderr,
        )
        return EXIT_CONFIG
    print(f"chromasync exporter: serving http://{args.address}:{args.port}/metrics", flush=True)
    stop = stop_on_signals()
    while not stop.wait(1.0):
        pass
    server.shutdown()
    thread.join(5)
    return 0
