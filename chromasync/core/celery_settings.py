"""Every Celery setting, computed from environment variables with local defaults.

One function, :func:`celery_settings`, serves both sides: ``celeryconfig`` (what
``celery -A tasks`` reads) calls it at import, and the producer calls it when it
builds its app, so the two agree on the broker, the transport and the queues.

The broker is SQS (moto on 127.0.0.1 locally, AWS in production): kombu takes
the SQS endpoint from the broker URL's host, so ``AWS_ENDPOINT_URL`` becomes
``sqs://KEY:SECRET@HOST:PORT``. ``CELERY_BROKER_URL`` overrides it. See the
README for every variable.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote, urlparse

from chromasync.core.config import AwsSettings, Settings, env_float, env_int
from chromasync.core.contract import SNAPSHOT_TASK_NAME
from chromasync.core.sqs_transport import TRANSPORT_PATH


def sqs_broker_url(aws: AwsSettings, env: Mapping[str, str]) -> str:
    explicit = env.get("CELERY_BROKER_URL", "").strip()
    if explicit:
        return explicit
    if not aws.endpoint_url or not aws.access_key_id or aws.session_token:
        # Real AWS: kombu takes credentials from boto3's usual chain (a broker URL
        # cannot carry a session token), and the endpoint from the region.
        return "sqs://"
    endpoint = urlparse(aws.endpoint_url)
    user = quote(aws.access_key_id, safe="")
    secret = quote(aws.secret_access_key or "", safe="")
    return f"sqs://{user}:{secret}@{endpoint.hostname}:{endpoint.port or 80}"


#: A snapshot tick not started within this many seconds (or the interval, if longer)
#: is dropped by the worker: the next tick supersedes it, so a worker that was
#: down does not publish a burst of snapshots when it comes back.
SNAPSHOT_MIN_EXPIRES = 30.0


def snapshot_beat_schedule(settings: Settings, env: Mapping[str, str]) -> dict[str, Any]:
    """One beat entry per collection, sent to that collection's own queue so the
    snapshot runs between its batches; none when ``CHROMASYNC_SNAPSHOT_INTERVAL`` is 0."""
    interval = env_float(env, "CHROMASYNC_SNAPSHOT_INTERVAL", 0.0)
    if not interval:
        return {}
    schedule: dict[str, Any] = {}
    for collection in settings.collections:
        options: dict[str, Any] = {
            "queue": settings.queue_for(collection),
            "expires": max(interval, SNAPSHOT_MIN_EXPIRES),
        }
        if settings.fifo:
            options["MessageGroupId"] = f"snapshot-{collection}"
        schedule[f"snapshot-{collection}"] = {
            "task": SNAPSHOT_TASK_NAME,
            "schedule": interval,
            "args": [collection],
            "options": options,
        }
    return schedule


def celery_settings(env: Mapping[str, str] | None = None) -> dict[str, Any]:
    env = os.environ if env is None else env
    settings = Settings.from_env(env)
    aws = settings.aws
    broker_url = sqs_broker_url(aws, env)
    return {
        "broker_url": broker_url,
        # SQS queues are looked up, never listed or created (chromasync.core.sqs_transport):
        # only `chromasync provision` creates them, and the roles may not. Another
        # broker (Flower reads the events Redis through this module) keeps its own.
        "broker_transport": TRANSPORT_PATH if broker_url.startswith("sqs://") else None,
        "broker_transport_options": {
            "region": aws.region,
            "is_secure": bool(aws.endpoint_url and aws.endpoint_url.startswith("https")),
            "queue_name_prefix": settings.queue_prefix,
            # Longer than the longest batch: a message comes back only when its
            # worker died (the heartbeat-protected lock bounds a batch's time).
            "visibility_timeout": settings.visibility_timeout,
            # Pause after an empty receive. Long polling (wait_time_seconds) already
            # bounds idle requests to about one per second; a longer pause only adds
            # lag (BENCHMARKS.md).
            "polling_interval": env_float(env, "CHROMASYNC_POLLING_INTERVAL", 0.05),
            "wait_time_seconds": env_int(env, "CHROMASYNC_WAIT_TIME_SECONDS", 1),
        },
        "broker_connection_retry_on_startup": True,
        "broker_connection_max_retries": env_int(env, "CHROMASYNC_BROKER_MAX_RETRIES", 10),
        "task_serializer": "json",
        "accept_content": ["json"],
        "result_serializer": "json",
        "task_ignore_result": True,
        "result_backend": None,
        # Exactly-once in effect: ack only after the Chroma write has returned;
        # a worker that dies mid-batch leaves its message to come back.
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        # An error that escapes the task (only when even the dead-letter queue
        # cannot be written) must not ack: kombu then leaves the message to SQS,
        # which redelivers it and, past maxReceiveCount, moves it to the DLQ.
        "task_acks_on_failure": False,
        "task_acks_on_timeout": False,
        "worker_prefetch_multiplier": 1,
        "worker_concurrency": 1,
        "worker_disable_rate_limits": True,
        "worker_hijack_root_logger": False,
        # Monitoring: SQS carries no events, so the worker's consumer sends task
        # events and heartbeats to Redis instead (tasks.events, docs/flower.md);
        # it also dead-letters what it cannot run (tasks.intake).
        # Producers talk to SQS only: no task-sent events.
        "worker_consumer": "tasks.consumer:WorkerConsumer",
        "worker_send_task_events": True,
        "task_send_sent_event": False,
        "task_default_queue": settings.queue_for(settings.lines_collection),
        "task_create_missing_queues": True,
        "timezone": "UTC",
        "enable_utc": True,
        "beat_schedule": snapshot_beat_schedule(settings, env),
    }
