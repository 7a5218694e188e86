"""One stream batch, end to end on the producer side: decode → detect → route → pack → publish.

Every entry point (Lambda handler, stream poller, replay, enqueue API) hands
its records, in stream order, to :class:`StreamProcessor` and gets back a
:class:`ProcessReport` that accounts for every record: turned into changes,
ignored by rule (with the reason), malformed (with the error), or not
published (everything from the first record that could not be published on).
A queue that does not exist, or a call the role may not make, is not a
record's failure: its :class:`~chromasync.core.resources.DeploymentError` goes up
to the entry point.
"""

from __future__ import annotations

import contextlib
import gc
import json
import logging
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from chromasync.core.config import Settings
from chromasync.core.resources import DeploymentError
from producers.changes import Detected, Ignored, detect
from producers.decoding import MalformedRecord, decode_record
from producers.packing import ChangeTooLarge, Routed, pack, sized
from producers.publishing import Published, Publisher, PublishError
from producers.quarantine import Quarantine

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RejectedRecord:
    index: int
    sequence_number: str | None
    error: str


@dataclass
class ProcessReport:
    records: int = 0
    changes: int = 0
    ignored: Counter[str] = field(default_factory=Counter)
    malformed: list[RejectedRecord] = field(default_factory=list)
    #: Malformed records kept in the quarantine queue.
    quarantined: int = 0
    published: list[Published] = field(default_factory=list)
    #: Index of the first record whose changes were not all published.
    failed_from: int | None = None
    error: str | None = None
    sequence_numbers: list[str | None] = field(default_factory=list)

    @property
    def tasks_sent(self) -> int:
        return len(self.published)

    def unpublished_sequence_numbers(self) -> list[str]:
        if self.failed_from is None:
            return []
        return [s for s in self.sequence_numbers[self.failed_from :] if s is not None]

    def merge(self, other: ProcessReport) -> None:
        self.records += other.records
        self.changes += other.changes
        self.ignored.update(other.ignored)
        self.malformed.extend(other.malformed)
        self.quarantined += other.quarantined
        self.published.extend(other.published)
        if other.error and not self.error:
            self.error = other.error


def _sequence_of(raw: Any) -> str | None:
    try:
        seq = raw["dynamodb"]["SequenceNumber"]
    except (KeyError, TypeError):
        return None
    return seq if isinstance(seq, str) else None


@contextlib.contextmanager
def _collector_paused() -> Iterator[None]:
    """Pause Python's cyclic garbage collector for one page of records.

    A page makes a few container objects per record that live until it is
    published, so the collector would run many times per page, each time
    walking the page so far and finding nothing to free. Nothing a page makes
    depends on the collector: reference counting frees it when the page is
    done, and the page size bounds what is held meanwhile. The collector
    resumes (if it was on) when the page is done.
    """
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


class StreamProcessor:
    """Turns records, in stream order, into published tasks and a full account of them."""

    def __init__(
        self,
        settings: Settings,
        publisher: Publisher,
        quarantine: Quarantine | None = None,
        source: str = "stream",
    ) -> None:
        self.settings = settings
        self.publisher = publisher
        self.quarantine = quarantine or Quarantine(settings)
        self.source = source

    def process(self, raw_records: Sequence[Any]) -> ProcessReport:
        """Every record of one page (at most a GetRecords page or a Lambda batch)."""
        with _collector_paused():
            return self._process(raw_records)

    def _process(self, raw_records: Sequence[Any]) -> ProcessReport:
        report = ProcessReport(records=len(raw_records))
        routed: list[Routed] = []
        origin: list[int] = []  # record index of each routed change
        sequence_numbers = report.sequence_numbers
        for index, raw in enumerate(raw_records):
            try:
                record = decode_record(raw)
                sequence_numbers.append(record.sequence_number)
                outcome = detect(record, self.settings)
                if isinstance(outcome, Detected):
                    change, size = sized(outcome.change)
            except (MalformedRecord, ChangeTooLarge) as exc:
                seq = _sequence_of(raw)
                if len(sequence_numbers) == index:  # the record itself could not be decoded
                    sequence_numbers.append(seq)
                report.malformed.append(RejectedRecord(index, seq, str(exc)))
                log.error(
                    "malformed stream record %s (sequence %s) skipped: %s; record: %s",
                    index,
                    seq,
                    exc,
                    json.dumps(raw, default=str)[:2000],
                )
                continue
            if isinstance(outcome, Ignored):
                report.ignored[outcome.value] += 1
                continue
            report.changes += 1
            for target in outcome.targets:
                routed.append(Routed(target, change, size))
                origin.append(index)
        unsaved = self._quarantine(raw_records, report)
        batches = pack(routed, self.settings.max_changes_per_task, per_receipt=self.settings.fifo)
        failed_from = unsaved
        for position, batch in enumerate(batches):
            try:
                report.published.append(self.publisher.publish(batch))
            except PublishError as exc:
                report.error = str(exc)
                # Map the batches not sent back to the records they carry.
                by_event: dict[str, int] = {}
                for item, index in zip(routed, origin, strict=True):
                    by_event.setdefault(item.change["event_id"], index)
                remaining = batches[position:]
                first = min(by_event[c["event_id"]] for b in remaining for c in b.changes)
                failed_from = first if failed_from is None else min(failed_from, first)
                break
        if failed_from is not None:
            report.failed_from = failed_from
            log.error("records from index %d are reported failed: %s", failed_from, report.error)
        return report

    def _quarantine(self, raw_records: Sequence[Any], report: ProcessReport) -> int | None:
        """Keep every malformed record; the index of the first that could not be kept."""
        for rejected in report.malformed:
            try:
                self.quarantine.send(raw_records[rejected.index], rejected.error, self.source)
                report.quarantined += 1
            except DeploymentError:
                raise  # not provisioned or not permitted: fail the whole call, naming it
            except Exception as exc:  # noqa: BLE001 - reported as a failed record instead
                report.error = (
                    f"could not quarantine malformed record {rejected.sequence_number} "
                    f"in {self.quarantine.queue_name}: {exc}"
                )
                return rejected.index
        return None
