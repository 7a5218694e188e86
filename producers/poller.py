"""The stream poller behind ``chromasync poll``: read every shard, publish, checkpoint.

It discovers the table's stream and its shards (following splits: a child
shard starts only after its parent is finished), reads each from its
checkpoint (or TRIM_HORIZON/LATEST the first time), hands each page of
records to :class:`~producers.pipeline.StreamProcessor` and checkpoints the
last record whose changes were all published. When a publish fails, the shard
is re-read from the checkpoint after a backoff: nothing is skipped.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from chromasync.core.backoff import backoff_delay
from chromasync.core.config import ConfigError, Settings
from chromasync.core.resources import DeploymentError, MissingResource, endpoint_of, not_permitted
from producers.checkpoints.backend import CheckpointStore
from producers.decoding import MalformedRecord, _creation_time
from producers.pipeline import ProcessReport, StreamProcessor

log = logging.getLogger(__name__)

#: Records asked for per GetRecords call (the API's maximum).
GET_RECORDS_LIMIT = 1000
#: Pause between rounds when no shard returned anything, in seconds.
IDLE_SLEEP = 0.25
#: Shortest time, in seconds, from the start of one round to the start of the next
#: while records trickle in; a round that read a full page starts the next at once.
#: AWS Lambda reads a stream shard about four times a second. Reading as often lets a
#: trickle gather into one task per collection per round instead of many small ones,
#: and each task costs the worker a receive, its lock, reads and a write, so many small
#: tasks queue behind each other where fewer larger ones would not.
ROUND_INTERVAL = 0.25
#: Seconds between DescribeStream calls that look for new shards while every known
#: shard is open. AWS allows DescribeStream about 10 times a second per account, and
#: calling it every round would add a call to every round (on moto, a serialised one)
#: to find shards that appear only when one closes. A shard that closes makes the
#: next round look at once, since its children are read next.
DISCOVER_INTERVAL = 10.0

StartPosition = Literal["TRIM_HORIZON", "LATEST"]


class StreamNotEnabled(ConfigError):
    """The table is missing or has no stream; the message says what to fix."""


@dataclass
class ShardState:
    shard_id: str
    parent_id: str | None
    iterator: str | None = None
    closed: bool = False
    failures: int = 0
    retry_at: float = 0.0


@dataclass(frozen=True)
class ShardProgress:
    """What one read of a shard did, for the ``on_shard`` hook (metrics: per-shard lag)."""

    shard_id: str
    #: Records read and published; 0 means the shard is caught up.
    records: int
    #: Epoch seconds of the last record's ApproximateCreationDateTime (None: none read).
    last_created_at: float | None
    #: The shard ended (split or stream disabled); it is not read again.
    closed: bool


def _created_at(record: Any) -> float | None:
    try:
        return _creation_time(record.get("dynamodb", {}).get("ApproximateCreationDateTime"))
    except (MalformedRecord, AttributeError):
        return None


@dataclass
class PollerStats:
    rounds: int = 0
    #: DescribeStream rounds (shard discovery).
    discoveries: int = 0
    report: ProcessReport = field(default_factory=ProcessReport)
    last_record_time: dict[str, float] = field(default_factory=dict)


class StreamPoller:
    def __init__(
        self,
        settings: Settings,
        processor: StreamProcessor,
        checkpoints: CheckpointStore,
        start: StartPosition = "TRIM_HORIZON",
        streams_client: Any | None = None,
        dynamodb_client: Any | None = None,
        on_report: Callable[[ProcessReport], None] | None = None,
        limit: int = GET_RECORDS_LIMIT,
        on_shard: Callable[[ShardProgress], None] | None = None,
    ) -> None:
        import boto3

        if not 1 <= limit <= GET_RECORDS_LIMIT:
            raise ValueError(f"records per GetRecords call must be 1..{GET_RECORDS_LIMIT}")

        self.settings = settings
        self.processor = processor
        self.checkpoints = checkpoints
        self.start = start
        kwargs = settings.aws.client_kwargs()
        self.streams = streams_client or boto3.client("dynamodbstreams", **kwargs)
        self.dynamodb = dynamodb_client or boto3.client("dynamodb", **kwargs)
        self.shards: dict[str, ShardState] = {}
        self.stats = PollerStats()
        self.on_report = on_report
        #: Called after every successful read of a shard (chromasync.shard_metrics.ShardMetrics).
        self.on_shard = on_shard
        #: Records per GetRecords call: also how many are published per checkpoint.
        self.limit = limit
        self.stream_arn = self._stream_arn()
        #: True while the last round handled records (more may be waiting).
        self.busy = True
        #: When the next round looks for new shards (monotonic; 0 = now).
        self._discover_at = 0.0

    def _stream_arn(self) -> str:
        try:
            table = self.dynamodb.describe_table(TableName=self.settings.table)["Table"]
        except self.dynamodb.exceptions.ResourceNotFoundException:
            raise MissingResource(
                "DynamoDB table",
                self.settings.table,
                endpoint_of(self.dynamodb),
                hint="it is the table whose stream is followed (CHROMASYNC_TABLE or --table); "
                "on AWS it belongs to the service that writes it, locally "
                "`chromasync provision --table` creates it",
            ) from None
        arn = table.get("LatestStreamArn")
        spec = table.get("StreamSpecification", {})
        if not arn or not spec.get("StreamEnabled", False):
            raise StreamNotEnabled(
                f"table {self.settings.table!r} has no stream enabled; enable it with "
                "StreamSpecification StreamEnabled=true, StreamViewType=NEW_AND_OLD_IMAGES"
            )
        return str(arn)

    def discover(self) -> None:
        """Add shards we have not seen yet (splits appear as new shards)."""
        start_id: str | None = None
        while True:
            kwargs: dict[str, Any] = {"StreamArn": self.stream_arn}
            if start_id:
                kwargs["ExclusiveStartShardId"] = start_id
            description = self.streams.describe_stream(**kwargs)["StreamDescription"]
            for shard in description.get("Shards", []):
                shard_id = shard["ShardId"]
                if shard_id not in self.shards:
                    state = ShardState(shard_id, shard.get("ParentShardId"))
                    state.closed = self.checkpoints.is_closed(self.stream_arn, shard_id)
                    self.shards[shard_id] = state
            start_id = description.get("LastEvaluatedShardId")
            if not start_id:
                break
        self.stats.discoveries += 1
        self._discover_at = time.monotonic() + DISCOVER_INTERVAL

    def _ready(self, state: ShardState) -> bool:
        if state.closed:
            return False
        parent = self.shards.get(state.parent_id) if state.parent_id else None
        return parent is None or parent.closed

    def _iterator(self, state: ShardState) -> str:
        checkpoint = self.checkpoints.get(self.stream_arn, state.shard_id)
        kwargs: dict[str, Any] = {"StreamArn": self.stream_arn, "ShardId": state.shard_id}
        if checkpoint:
            kwargs.update(ShardIteratorType="AFTER_SEQUENCE_NUMBER", SequenceNumber=checkpoint)
        else:
            kwargs["ShardIteratorType"] = self.start
        return str(self.streams.get_shard_iterator(**kwargs)["ShardIterator"])

    def _poll_shard(self, state: ShardState) -> int:
        if state.iterator is None:
            state.iterator = self._iterator(state)
        response = self.streams.get_records(ShardIterator=state.iterator, Limit=self.limit)
        records = response.get("Records", [])
        next_iterator = response.get("NextShardIterator")
        if records:
            report = self.processor.process(records)
            self.stats.report.merge(report)
            if self.on_report:
                self.on_report(report)
            upto = len(records) if report.failed_from is None else report.failed_from
            if upto > 0:
                last = records[upto - 1]["dynamodb"]["SequenceNumber"]
                self.checkpoints.put(self.stream_arn, state.shard_id, last)
            if report.failed_from is not None:
                # Re-read from the checkpoint after a backoff: nothing skipped.
                state.iterator = None
                state.failures += 1
                state.retry_at = time.monotonic() + backoff_delay(state.failures, 0.5, 30.0)
                return upto
            state.failures = 0
            self.stats.last_record_time[state.shard_id] = time.time()
        if next_iterator is None:
            self.checkpoints.mark_closed(self.stream_arn, state.shard_id)
            state.closed = True
            self._discover_at = 0.0  # its children, if any, are next
        state.iterator = next_iterator
        if self.on_shard is not None:
            created = _created_at(records[-1]) if records else None
            self._report_shard(ShardProgress(state.shard_id, len(records), created, state.closed))
        return len(records)

    def _report_shard(self, progress: ShardProgress) -> None:
        assert self.on_shard is not None
        try:
            self.on_shard(progress)
        except Exception:  # noqa: BLE001 - a hook (metrics) never stops the poller
            log.exception("on_shard hook failed for %s", progress.shard_id)

    def poll_once(self) -> int:
        """One round over every ready shard; returns records handled."""
        now = time.monotonic()
        if now >= self._discover_at:
            self.discover()
        handled = 0
        for state in list(self.shards.values()):
            if self._ready(state) and state.retry_at <= now:
                handled += self._poll_shard(state)
        self.stats.rounds += 1
        return handled

    def run(
        self,
        stop: threading.Event,
        idle_sleep: float = IDLE_SLEEP,
        round_interval: float = ROUND_INTERVAL,
    ) -> None:
        """Poll until ``stop`` is set."""
        log.info("polling stream %s from %s", self.stream_arn, self.start)
        while not stop.is_set():
            started = time.monotonic()
            try:
                handled = self.poll_once()
            except DeploymentError:
                raise  # not provisioned or not permitted: the command exits 3 naming it
            except Exception as exc:  # noqa: BLE001 - the poller keeps going; it retries from checkpoints
                denied = not_permitted(exc, "reading the stream or the checkpoints")
                if denied is not None:
                    raise denied from exc
                log.exception("stream poll round failed; retrying from checkpoints")
                for state in self.shards.values():
                    state.iterator = None
                stop.wait(1.0)
                continue
            self.busy = handled > 0
            if handled == 0:
                stop.wait(idle_sleep)
            elif handled < self.limit:
                stop.wait(max(0.0, started + round_interval - time.monotonic()))
