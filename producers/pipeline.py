"""One stream batch, end to end on the producer side: decode → detect → route → pack → publish.

Every entry point (Lambda handler, stream poller, replay, enqueue API) hands
its records, in stream order, to :class:`StreamProcessor` and gets back a
:class:`ProcessReport` that accounts for every record: turned into changes,
ignored by rule (with the reason), malformed (with the error), or not
published (everything from the first record that could not be published on).
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from producers.changes import Detected, Ignored, detect
from producers.config import Settings
from producers.decoding import MalformedRecord, decode_record
from producers.entities import CollectionRole
from producers.packing import ChangeTooLarge, Routed, pack
from producers.publishing import Published, Publisher, PublishError

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
        self.published.extend(other.published)
        if other.error and not self.error:
            self.error = other.error


def _sequence_of(raw: Any) -> str | None:
    try:
        seq = raw["dynamodb"]["SequenceNumber"]
    except (KeyError, TypeError):
        return None
    return seq if isinstance(seq, str) else None


class StreamProcessor:
    def __init__(self, settings: Settings, publisher: Publisher) -> None:
        self.settings = settings
        self.publisher = publisher

    def _collection(self, role: CollectionRole) -> str:
        if role is CollectionRole.LINES:
            return self.settings.lines_collection
        return self.settings.words_collection

    def process(self, raw_records: Sequence[Any]) -> ProcessReport:
        report = ProcessReport(records=len(raw_records))
        routed: list[Routed] = []
        origin: list[int] = []  # record index of each routed change
        for index, raw in enumerate(raw_records):
            seq = _sequence_of(raw)
            report.sequence_numbers.append(seq)
            try:
                outcome = detect(decode_record(raw), self.settings)
            except MalformedRecord as exc:
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
            assert isinstance(outcome, Detected)
            report.changes += 1
            for role in outcome.roles:
                routed.append(Routed(self._collection(role), outcome.change))
                origin.append(index)
        try:
            batches = pack(routed, self.settings.max_changes_per_task)
        except ChangeTooLarge as exc:
            report.error = str(exc)
            report.failed_from = 0
            return report
        # Map each batch back to the records it carries.
        by_event: dict[str, int] = {}
        for item, index in zip(routed, origin, strict=True):
            by_event.setdefault(item.change.event_id, index)
        for position, batch in enumerate(batches):
            try:
                report.published.append(self.publisher.publish(batch))
            except PublishError as exc:
                report.error = str(exc)
                remaining = batches[position:]
                report.failed_from = min(by_event[c.event_id] for b in remaining for c in b.changes)
                log.error("%s; records from index %d are reported failed", exc, report.failed_from)
                break
        return report
