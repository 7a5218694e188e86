"""The producer side of the per-message design: one SQS message per stream record.

It decodes each record and recognises its entity with chromasync's own code (so
both designs read the stream the same way), then sends one Celery message per
record to the queue of the one embedding it updates: a label or a word goes to
the words queue, a line to the lines queue.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from benchmarks.baseline import APPLY_ONE_TASK
from chromasync.core.config import Settings
from producers.changes import Detected, detect
from producers.decoding import decode_record
from producers.pipeline import ProcessReport, StreamProcessor
from producers.publishing import Published, Publisher


def per_message_queues(settings: Settings) -> Settings:
    """Settings whose collections name the baseline's own queues (``pm-lines``, ``pm-words``)."""
    return replace(settings, collections=tuple(f"pm-{c}" for c in settings.collections))


class PerMessageProcessor(StreamProcessor):
    """Sends one message per record, in stream order; same report as chromasync's."""

    def __init__(self, settings: Settings, queues: Settings, publisher: Publisher) -> None:
        """``queues``: settings whose collections name the baseline's queues."""
        super().__init__(settings, publisher)
        self.queues = queues

    def process(self, raw_records: Sequence[Any]) -> ProcessReport:
        report = ProcessReport(records=len(raw_records))
        app = self.publisher.app
        for raw in raw_records:
            record = decode_record(raw)
            outcome = detect(record, self.settings)
            if not isinstance(outcome, Detected):
                report.ignored[str(outcome)] += 1
                continue
            role = self.settings.role_of(outcome.targets[0])
            change = outcome.change
            message = {
                "pk": record.keys["PK"],
                "sk": record.keys["SK"],
                "entity_type": str(change["entity_type"]),
                "collection": self.settings.collection_for(role),
                "collection_role": role.value,
                "keys": dict(change["keys"]),
            }
            queue = self.queues.collection_for(role)
            app.send_task(APPLY_ONE_TASK, args=[message], queue=queue, retry=False)
            report.changes += 1
            report.published.append(Published(change["event_id"], message["collection"], queue, 1))
        return report
