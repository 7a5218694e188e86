"""The producer alone, CPU only: decode, diff, route, pack, in records per second.

Both loops run over the same records, read back from the run's own stream
(GetRecords output, as the poller receives them), in this process, with no I/O:

* the bare loop: boto3's ``TypeDeserializer`` over each record's ``Keys``,
  ``NewImage`` and ``OldImage``, nothing else — the least any producer must do;
* chromasync: :class:`~producers.pipeline.StreamProcessor` on pages of 1,000
  records (what the poller hands it), with a publisher that builds each task's
  payload (``ChangeBatch.to_payload``) and sends nothing.

Each loop runs ``repeats`` times, interleaved; the fastest run of each counts
(the least disturbed by the rest of the machine).

The records are the run's own, repeated to at least :data:`MIN_RECORDS` so a
timed loop lasts long enough to be timed steadily.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from chromasync.core.config import Settings
from chromasync.core.contract import ChangeBatch, wire_change
from chromasync.core.wire import WireBatch
from producers.changes import Detected, detect
from producers.decoding import decode_record
from producers.packing import Routed, pack, sized
from producers.pipeline import StreamProcessor
from producers.publishing import Published, Publisher

#: Records per ``process`` call, as the poller reads them (GetRecords' maximum).
PAGE = 1000


class NullPublisher(Publisher):
    """Builds the payload a real publish sends, and sends nothing."""

    def __init__(self, settings: Settings) -> None:  # no Celery app, no broker
        self.settings = settings

    def publish(self, batch: WireBatch | ChangeBatch) -> Published:
        batch = WireBatch.of(batch)
        batch.to_payload()
        return Published(
            batch.batch_id,
            batch.collection,
            self.settings.queue_for(batch.collection),
            len(batch.changes),
        )


@dataclass(frozen=True)
class ProducerCpuResult:
    records: int
    changes: int
    tasks: int
    repeats: int
    bare_seconds: float
    producer_seconds: float
    #: Microseconds per record of each step of the producer, timed alone (:func:`stage_costs`).
    stages: dict[str, float]

    @property
    def bare_records_per_second(self) -> float:
        return self.records / self.bare_seconds

    @property
    def producer_records_per_second(self) -> float:
        return self.records / self.producer_seconds

    def to_json(self) -> dict[str, Any]:
        return {
            **asdict(self),
            "bare_records_per_second": self.bare_records_per_second,
            "producer_records_per_second": self.producer_records_per_second,
        }


def capture_records(
    streams: Any, stream_arn: str, limit: int, after: str | None = None
) -> list[dict[str, Any]]:
    """Up to ``limit`` records of the stream, as GetRecords returns them.

    From the shard's start, or from just after sequence number ``after`` (the
    benchmark's workloads, not the seeded inserts).
    """
    records: list[dict[str, Any]] = []
    shards = streams.describe_stream(StreamArn=stream_arn)["StreamDescription"]["Shards"]
    for shard in shards:
        position: dict[str, str] = {"ShardIteratorType": "TRIM_HORIZON"}
        if after is not None:
            position = {"ShardIteratorType": "AFTER_SEQUENCE_NUMBER", "SequenceNumber": after}
        iterator = streams.get_shard_iterator(
            StreamArn=stream_arn, ShardId=shard["ShardId"], **position
        )["ShardIterator"]
        while iterator and len(records) < limit:
            want = min(1000, limit - len(records))
            page = streams.get_records(ShardIterator=iterator, Limit=want)
            if not page["Records"]:
                break
            records.extend(page["Records"])
            iterator = page.get("NextShardIterator")
    return records


def bare_loop(records: Sequence[dict[str, Any]]) -> int:
    """boto3's TypeDeserializer over every record's keys and images."""
    from boto3.dynamodb.types import TypeDeserializer

    deserializer = TypeDeserializer()
    decoded = 0
    for record in records:
        body = record["dynamodb"]
        for part in ("Keys", "NewImage", "OldImage"):
            image = body.get(part)
            if image is not None:
                {k: deserializer.deserialize(v) for k, v in image.items()}
                decoded += 1
    return decoded


def _timed(run: Callable[[], Any], paused: bool = False) -> float:
    """Seconds ``run`` takes; ``paused``: with the cyclic collector off (as for a page)."""
    gc.collect()
    was_enabled = gc.isenabled()
    if paused:
        gc.disable()
    try:
        began = time.perf_counter()
        run()
        return time.perf_counter() - began
    finally:
        if was_enabled:
            gc.enable()


#: Records each timed loop runs over at least: the run's records, repeated. A loop
#: of a few hundred milliseconds is timed far more steadily than one of 30.
MIN_RECORDS = 10_000


def measure_producer(
    settings: Settings, records: Sequence[dict[str, Any]], repeats: int = 5
) -> ProducerCpuResult:
    if not records:
        raise ValueError("no stream records to run the producer over")
    records = list(records) * max(1, -(-MIN_RECORDS // len(records)))
    processor = StreamProcessor(settings, NullPublisher(settings))
    pages = [records[i : i + PAGE] for i in range(0, len(records), PAGE)]
    changes = tasks = 0

    def produce() -> None:
        nonlocal changes, tasks
        changes = tasks = 0
        for page in pages:
            report = processor.process(page)
            changes += report.changes
            tasks += report.tasks_sent

    # Interleaved: each repeat times both loops, so a disturbance of the machine
    # touches both figures alike; the fastest run of each counts.
    bare: list[float] = []
    produced: list[float] = []
    for _ in range(repeats):
        bare.append(_timed(lambda: bare_loop(records)))
        produced.append(_timed(produce))
    return ProducerCpuResult(
        len(records),
        changes,
        tasks,
        repeats,
        min(bare),
        min(produced),
        stage_costs(settings, records, repeats),
    )


#: The producer's steps as :func:`stage_costs` times them, in pipeline order:
#: decoding a record; recognising its entity and diffing its images (``detect``
#: without validation); validating the change against the contract;
#: bounding its serialised size; packing the changes of a page into batches;
#: dumping each batch's payload. ``bare loop`` is the baseline, per record.
STAGES = ("decode", "detect", "validate", "size", "pack", "payload", "bare loop")


def stage_costs(
    settings: Settings, records: Sequence[dict[str, Any]], repeats: int = 5
) -> dict[str, float]:
    """Microseconds per record of each of :data:`STAGES`, each timed alone (best of ``repeats``).

    Each step runs over what the step before made (computed once, untimed), by
    the same functions :class:`StreamProcessor` calls. ``validate`` validates
    each change ``detect`` made again, and ``detect`` is reported without it.
    The steps' sum falls short of the whole ``process`` by the pipeline's own
    bookkeeping (sequence numbers, routing, the report).
    """
    decoded = [decode_record(raw) for raw in records]
    detected = [d for d in (detect(r, settings) for r in decoded) if isinstance(d, Detected)]
    fields = [dict(d.change) for d in detected]
    routed = [
        Routed(target, d.change, sized(d.change)[1]) for d in detected for target in d.targets
    ]
    # Pages of routed changes as the pipeline packs them: those of PAGE records.
    per_page = max(1, round(len(routed) * PAGE / len(records)))
    pages = [routed[i : i + per_page] for i in range(0, len(routed), per_page)]
    batches = [b for page in pages for b in pack(page, settings.max_changes_per_task)]
    steps: dict[str, Callable[[], Any]] = {
        "decode": lambda: [decode_record(raw) for raw in records],
        "detect": lambda: [detect(r, settings) for r in decoded],
        "validate": lambda: [wire_change(f) for f in fields],
        "size": lambda: [sized(d.change) for d in detected],
        "pack": lambda: [pack(page, settings.max_changes_per_task) for page in pages],
        "payload": lambda: [batch.to_payload() for batch in batches],
        "bare loop": lambda: bare_loop(records),
    }
    best = {name: min(_timed(step, True) for _ in range(repeats)) for name, step in steps.items()}
    best["detect"] = max(0.0, best["detect"] - best["validate"])
    return {name: best[name] * 1e6 / len(records) for name in STAGES}


def modify_records(receipts: int) -> list[dict[str, Any]]:
    """GetRecords-shaped MODIFY records of every line, word, label and merchant item of
    ``receipts`` seeded receipts (one monitored field changed each): the producer's
    commonest record, with both images, built without any server."""
    from datetime import UTC, datetime

    from boto3.dynamodb.types import TypeSerializer

    from chromasync.seed import ReceiptSpec, table_items

    serializer = TypeSerializer()

    def typed(item: dict[str, Any]) -> dict[str, Any]:
        return {k: serializer.serialize(v) for k, v in item.items()}

    changed = {"RECEIPT_LINE": "text", "RECEIPT_WORD": "text", "RECEIPT_METADATA": "merchant_name"}
    changed["RECEIPT_WORD_LABEL"] = "validation_status"
    records: list[dict[str, Any]] = []
    for index in range(receipts):
        spec = ReceiptSpec(f"00000000-0000-4000-8000-{index:012d}", 1, 12, 6)
        for item in table_items(spec, index):
            field_name = changed.get(item["TYPE"])
            if field_name is None:
                continue
            new = {**item, field_name: f"{item.get(field_name, '')} (edited)"}
            sequence = f"{len(records) + 1:021d}"
            records.append(
                {
                    "eventID": f"e{sequence}",
                    "eventName": "MODIFY",
                    "dynamodb": {
                        "ApproximateCreationDateTime": datetime.now(UTC),
                        "Keys": typed({"PK": item["PK"], "SK": item["SK"]}),
                        "NewImage": typed(new),
                        "OldImage": typed(item),
                        "SequenceNumber": sequence,
                        "StreamViewType": "NEW_AND_OLD_IMAGES",
                    },
                }
            )
    return records


def main() -> None:
    """``python -m benchmarks.producer_cpu``: the CPU comparison on MODIFY records, no servers."""
    import argparse

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--receipts", type=int, default=120, help="receipts (default: 120)")
    args = parser.parse_args()
    records = modify_records(args.receipts)
    result = measure_producer(Settings.from_env({}), records)
    print(
        f"{len(records):,} MODIFY records ({result.records:,} per loop): bare TypeDeserializer "
        f"loop {result.bare_records_per_second:,.0f} records/s, producer "
        f"{result.producer_records_per_second:,.0f} records/s "
        f"({result.bare_seconds / result.producer_seconds:.2f} x)"
    )
    print(f"per record: {format_stages(result.to_json())}")


def format_stages(result: dict[str, Any]) -> str:
    """Each step's microseconds per record, their sum and the whole producer's.

    ``result`` is :meth:`ProducerCpuResult.to_json` (what the report keeps).
    """
    stages = result["stages"]
    steps = [f"{name} {stages[name]:.1f}" for name in STAGES if name != "bare loop"]
    total = sum(stages[name] for name in STAGES if name != "bare loop")
    whole = result["producer_seconds"] * 1e6 / result["records"]
    bare = stages["bare loop"]
    return f"{', '.join(steps)} (sum {total:.1f}, whole {whole:.1f}; bare loop {bare:.1f}) µs"


if __name__ == "__main__":
    main()
