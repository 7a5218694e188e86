"""AWS Lambda entry point on the table's DynamoDB stream: ``producers.lambda_handler.handler``.

Configure the event source mapping with ``FunctionResponseTypes:
["ReportBatchItemFailures"]``. The handler answers

    {"batchItemFailures": [{"itemIdentifier": "<SequenceNumber>"}, ...]}

and the rule is:

* Records are handled in stream order. At the first record whose changes
  could not all be published (after the publisher's retries), that record
  *and every later one* are reported; Lambda resumes the shard from the
  lowest reported sequence number, so nothing is skipped and nothing after a
  gap is acknowledged. Changes of later records that did go out are sent
  again then; the worker applies current state, so duplicates are harmless.
* A record that is not one of our entities (or whose entity is turned off)
  is ignored and counted, never reported.
* A malformed record (cannot be decoded, or has our key shape with a broken
  id) is logged, counted and sent whole, with the reason, to the quarantine
  queue ``{CHROMASYNC_QUEUE_PREFIX}stream-rejects``; it does not block the
  shard. Only when that send fails is it reported, with every later record.
* A record without a readable ``dynamodb.SequenceNumber`` cannot be reported
  by id: it is quarantined like any malformed record. If its quarantine
  fails too, the handler raises, so Lambda retries the whole batch rather
  than acknowledge a record that is kept nowhere.
* A wrong setting raises :class:`~chromasync.core.config.ConfigError` naming the
  variable: the invocation fails (and is retried) until the configuration
  is fixed, instead of dropping records.
* A queue that does not exist (a task queue or the quarantine) raises
  :class:`~chromasync.core.resources.MissingResource` naming it and ``chromasync
  provision``, a send the role may not make raises
  :class:`~chromasync.core.resources.NotPermitted`: the invocation fails and Lambda
  retries the batch until the deployment is fixed. The handler never creates
  anything; its role may not.

Settings, the Celery app and the processor are built once per container, on
the first invocation (:mod:`producers.defaults`). Each invocation logs one
summary line. This module imports neither chromadb nor the worker code, so it
ships as a small zip.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from typing import Any

from chromasync.core.config import ConfigError
from chromasync.core.resources import DeploymentError
from producers import defaults
from producers.pipeline import ProcessReport, StreamProcessor

log = logging.getLogger(__name__)
# Lambda's Python runtime leaves the root logger at WARNING; the summary line is INFO.
if log.level == logging.NOTSET:
    log.setLevel(logging.INFO)

#: ``source`` recorded with quarantined records from this entry point.
SOURCE = "lambda"

BatchResponse = dict[str, list[dict[str, str]]]


class UnreportableFailure(RuntimeError):
    """A record that failed has no sequence number to report; the whole batch must be retried."""


def processor() -> StreamProcessor:
    """This container's processor, built on first use."""
    try:
        return defaults.processor(SOURCE)
    except ConfigError as exc:
        log.error("chromasync lambda: configuration error: %s", exc)
        raise


def _records(event: Any) -> Sequence[Any]:
    if not isinstance(event, Mapping) or not isinstance(event.get("Records"), list):
        raise ValueError(
            "the event is not a DynamoDB stream batch (expected an object with a 'Records' list)"
        )
    records: list[Any] = event["Records"]
    return records


def summary(report: ProcessReport, failures: int, seconds: float, request_id: str) -> str:
    """The one log line of an invocation."""
    ignored = ", ".join(f"{k} {v}" for k, v in sorted(report.ignored.items())) or "none"
    line = (
        f"chromasync lambda: {report.records} records, {report.changes} changes, "
        f"{report.tasks_sent} tasks sent, ignored {sum(report.ignored.values())} ({ignored}), "
        f"malformed {len(report.malformed)} ({report.quarantined} quarantined), "
        f"reported failed {failures}, {seconds:.2f}s"
    )
    if request_id:
        line += f", request {request_id}"
    if report.error:
        line += f"; error: {report.error}"
    return line


def handler(event: Any, context: Any) -> BatchResponse:
    """Publish the batch's changes; report the records Lambda must deliver again."""
    started = time.monotonic()
    records = _records(event)
    try:
        report = processor().process(records)
    except DeploymentError as exc:
        log.error("chromasync lambda: %s; failing the invocation so the batch is retried", exc)
        raise
    if report.failed_from is not None and report.sequence_numbers[report.failed_from] is None:
        raise UnreportableFailure(
            f"record {report.failed_from} of the batch failed and has no SequenceNumber to "
            f"report; failing the whole batch so it is retried: {report.error}"
        )
    failed = report.unpublished_sequence_numbers()
    request_id = str(getattr(context, "aws_request_id", "") or "")
    line = summary(report, len(failed), time.monotonic() - started, request_id)
    if failed:
        log.error(line)
    else:
        log.info(line)
    return {"batchItemFailures": [{"itemIdentifier": seq} for seq in failed]}
