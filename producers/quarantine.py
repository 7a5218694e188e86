"""Stream records that cannot be read, kept whole in an SQS queue for a person to look at.

A malformed record must neither block its shard forever nor vanish: it is
logged, counted, and sent here (``{prefix}stream-rejects``) with the reason.
Only when this send fails is the record reported as failed to its source
(Lambda ``batchItemFailures``, the poller's retry), so nothing is lost. The
queue is made by ``chromasync provision``; here it is only looked up, and a
missing one is :class:`~chromasync.core.resources.MissingResource`.
"""

from __future__ import annotations

import json
import time
from typing import Any

from chromasync.core.config import Settings
from chromasync.core.resources import not_permitted, queue_url

#: Name of the quarantine queue, after the queue prefix.
QUARANTINE_SUFFIX = "stream-rejects"
#: How long a quarantined record is kept: SQS's longest retention, 14 days.
QUARANTINE_RETENTION_SECONDS = 14 * 24 * 3600


class Quarantine:
    def __init__(self, settings: Settings, client: Any | None = None) -> None:
        self.settings = settings
        self._client = client
        self._url: str | None = None

    @property
    def queue_name(self) -> str:
        return f"{self.settings.queue_prefix}{QUARANTINE_SUFFIX}"

    def client(self) -> Any:
        if self._client is None:
            import boto3

            self._client = boto3.client("sqs", **self.settings.aws.client_kwargs())
        return self._client

    def url(self) -> str:
        if self._url is None:
            self._url = queue_url(self.client(), self.queue_name)
        return self._url

    def send(self, record: Any, error: str, source: str) -> None:
        """Keep one record with the reason; a denied call is :class:`NotPermitted`."""
        try:
            self._send(record, error, source)
        except Exception as exc:
            denied = not_permitted(exc, f"quarantining a record in {self.queue_name!r}")
            if denied is not None:
                raise denied from exc
            raise

    def _send(self, record: Any, error: str, source: str) -> None:
        body = json.dumps(
            {"record": record, "error": error, "source": source, "at": time.time()},
            default=str,
        )
        if len(body.encode()) > 250_000:
            body = json.dumps(
                {
                    "record_truncated": body[:200_000],
                    "error": error,
                    "source": source,
                    "at": time.time(),
                }
            )
        self.client().send_message(QueueUrl=self.url(), MessageBody=body)
