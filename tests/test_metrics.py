"""Metrics end to end: workers and poller record in Redis, ``chromasync exporter`` serves them.

One run with known counts: two seeded receipts flow through the stream
(INSERTs), then known MODIFY changes and one poison payload are sent the way
another service would; the exporter, a subprocess on a free port, is
scraped over HTTP and every number is checked.
"""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from chromasync.core.contract import Change, ChangeBatch
from chromasync.local import free_port, wait_for
from chromasync.seed import ReceiptSpec, demo_receipts
from chromasync.shard_metrics import ShardMetrics
from tests.stack import Stack

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(url: str) -> Samples:
    with urllib.request.urlopen(url, timeout=10) as response:
        text = response.read().decode()
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, frozenset(labels.items())))


def total(samples: Samples, name: str, **labels: str) -> float:
    """Sum of the samples of ``name`` whose labels include ``labels``."""
    wanted = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and wanted <= ls)


@pytest.fixture
def exporter(stack: Stack) -> Iterator[str]:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "chromasync.cli", "exporter", "--port", str(port)],
        env=stack.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    url = f"http://127.0.0.1:{port}/metrics"

    def serving() -> bool:
        if process.poll() is not None:
            raise RuntimeError(
                f"exporter exited: {process.stdout.read() if process.stdout else ''}"
            )
        urllib.request.urlopen(url, timeout=2).close()
        return True

    try:
        wait_for(serving, 30, interval=0.1, what="the exporter to serve /metrics")
        yield url
    finally:
        process.terminate()
        assert process.wait(10) == 0


_sequence = itertools.count(900_000)


def _change(entity: str, event: str, spec: ReceiptSpec, **keys: int) -> Change:
    """A change another service might send, created now (so its lag is observed)."""
    seq = str(next(_sequence))
    return Change(
        entity_type=entity,
        event_name=event,
        keys={"image_id": spec.image_id, "receipt_id": spec.receipt_id, **keys},
        sequence_number=seq,
        event_id=f"known-{seq}",
        approximate_creation_time=time.time(),
    )


def test_exporter_serves_exact_counts_depths_and_histograms(stack: Stack, exporter: str) -> None:
    receipts = demo_receipts(2, lines=2, words_per_line=2)
    stack.seed(receipts)
    stack.start_workers()

    # 1. The seeded items flow through the stream: INSERTs with real creation times.
    poller = stack.poller()
    poller.on_shard = ShardMetrics.from_env(stack.env)
    stack.drain(poller)
    published = Counter[str]()
    batches = Counter[str]()
    for sent in poller.stats.report.published:
        published[sent.collection] += sent.changes
        batches[sent.collection] += 1
    lines, words = stack.lines, stack.words
    # Per receipt: its metadata (both), 2 lines (lines), 4 words (words), 2 labels (both).
    inserts = {
        (lines, "RECEIPT_METADATA"): 2,
        (lines, "RECEIPT_LINE"): 4,
        (lines, "RECEIPT_WORD_LABEL"): 4,
        (words, "RECEIPT_METADATA"): 2,
        (words, "RECEIPT_WORD"): 8,
        (words, "RECEIPT_WORD_LABEL"): 4,
    }
    assert published == {lines: 10, words: 14}

    # 2. Known changes, sent as another service would, and one poison payload.
    a, b = receipts
    known = {
        words: [
            _change("RECEIPT_METADATA", "MODIFY", a),
            _change("RECEIPT_WORD", "MODIFY", a, line_id=1, word_id=1),
            _change("RECEIPT_WORD", "MODIFY", b, line_id=2, word_id=2),
        ],
        lines: [
            _change("RECEIPT_METADATA", "MODIFY", b),
            _change("RECEIPT_LINE", "MODIFY", a, line_id=2),
        ],
    }
    for collection, changes in known.items():
        stack.send(ChangeBatch(collection=collection, changes=changes).to_payload(), collection)
    stack.send({"schema_version": 2, "collection": words, "changes": [{}]}, words)

    def settled() -> bool:
        samples = scrape(exporter)
        return (
            value(samples, "chromasync_queue_visible_messages", **_dlq(stack, words)) == 1
            and stack.queues_empty()
            and total(samples, "chromasync_changes_received_total") == 24 + 5 + 1
        )

    wait_for(settled, 60, interval=0.3, what="known changes applied and the poison dead-lettered")
    samples = scrape(exporter)

    # Exact counters per collection, entity and event.
    for (collection, entity), count in inserts.items():
        labels = {"collection": collection, "entity": entity, "event": "INSERT"}
        assert value(samples, "chromasync_changes_received_total", **labels) == count, labels
        assert value(samples, "chromasync_changes_applied_total", **labels) == count, labels
    modifies = Counter((c, ch.entity_type) for c, chs in known.items() for ch in chs)
    for (collection, entity), count in modifies.items():
        labels = {"collection": collection, "entity": entity, "event": "MODIFY"}
        assert value(samples, "chromasync_changes_received_total", **labels) == count, labels
        assert value(samples, "chromasync_changes_applied_total", **labels) == count, labels
    poison = {"collection": words, "entity": "unknown", "event": "unknown"}
    assert value(samples, "chromasync_changes_received_total", **poison) == 1
    assert value(samples, "chromasync_changes_failed_total", **poison) == 1
    assert value(samples, "chromasync_changes_dead_lettered_total", **poison) == 1
    assert value(samples, "chromasync_changes_applied_total", **poison) is None
    assert total(samples, "chromasync_changes_applied_total") == 24 + 5
    assert total(samples, "chromasync_changes_failed_total") == 1
    assert total(samples, "chromasync_changes_retried_total") == 0
    errors = {"collection": words, "error": "ValidationError"}
    assert value(samples, "chromasync_task_errors_total", **errors) == 1

    # Queue depths from SQS: the poison in the words DLQ, everything else empty.
    for collection in (lines, words):
        main = _queue(stack.settings.sqs_queue_name(collection), collection, "queue")
        assert value(samples, "chromasync_queue_visible_messages", **main) == 0
        assert value(samples, "chromasync_queue_inflight_messages", **main) == 0
    assert value(samples, "chromasync_queue_visible_messages", **_dlq(stack, lines)) == 0
    assert value(samples, "chromasync_queue_visible_messages", **_dlq(stack, words)) == 1

    # Histograms: one lock wait, hold and batch time per applied batch (the stream's and
    # the known one); the poison never took the lock. One lag per applied change.
    for collection in (lines, words):
        where = {"collection": collection}
        for name in (
            "chromasync_lock_wait_seconds",
            "chromasync_lock_hold_seconds",
            "chromasync_batch_apply_seconds",
        ):
            count = value(samples, f"{name}_count", **where)
            assert count == batches[collection] + 1, (name, collection)
            assert value(samples, f"{name}_bucket", **where, le="+Inf") == count
            assert (value(samples, f"{name}_sum", **where) or 0) > 0
        lagged = total(samples, "chromasync_end_to_end_lag_seconds_count", **where)
        applied = total(samples, "chromasync_changes_applied_total", **where)
        assert lagged == applied  # every change here carried its creation time
        assert total(samples, "chromasync_end_to_end_lag_seconds_sum", **where) > 0

    # The poller: every shard caught up, every record counted.
    shards = [ls for (n, ls) in samples if n == "chromasync_stream_poller_lag_seconds"]
    assert shards and all(
        samples[("chromasync_stream_poller_lag_seconds", ls)] == 0 for ls in shards
    )
    assert value(samples, "chromasync_stream_records_read_total") == poller.stats.report.records
    # Locks are free, every collection applied something, every service answered.
    for collection in (lines, words):
        assert value(samples, "chromasync_lock_held", collection=collection) == 0
        applied_at = value(
            samples, "chromasync_last_applied_timestamp_seconds", collection=collection
        )
        assert applied_at is not None and time.time() - applied_at < 120
    for source in ("metrics", "sqs", "lock_store"):
        assert value(samples, "chromasync_source_up", source=source) == 1


def _queue(name: str, collection: str, kind: str) -> dict[str, str]:
    return {"queue": name, "collection": collection, "kind": kind}


def _dlq(stack: Stack, collection: str) -> dict[str, str]:
    return _queue(stack.settings.dlq_name(collection), collection, "dead_letter")


def test_worker_logging_hooks_format_celery_handlers_as_json(tmp_path: Path) -> None:
    """Celery's own logging setup, then a log line inside a task context: one JSON object."""
    script = """
import logging
from chromasync.core.logs import install_worker_logging, log_context
install_worker_logging()
from tasks.app import app
app.log.setup_logging_subsystem(loglevel="INFO")
with log_context(collection="words", batch_id="b-1"):
    logging.getLogger("tasks.compaction").warning(
        "dead-lettered", extra={"event_id": "ev-1", "receipt": "img/1"}
    )
"""
    env = {**_base_env(), "CHROMASYNC_LOG_FORMAT": "json"}
    done = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    line = json.loads(done.stderr.strip().splitlines()[-1])
    assert line["message"] == "dead-lettered" and line["level"] == "WARNING"
    assert line["collection"] == "words" and line["batch_id"] == "b-1"
    assert line["event_id"] == "ev-1" and line["receipt"] == "img/1"

    env["CHROMASYNC_LOG_FORMAT"] = "yaml"
    bad = subprocess.run(
        [sys.executable, "-m", "chromasync.cli", "status"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bad.returncode == 2 and "CHROMASYNC_LOG_FORMAT='yaml'" in bad.stderr
    assert "Traceback" not in bad.stderr


def _base_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("CHROMASYNC_")}
