"""All Celery settings, read from environment variables with local defaults.

The broker is SQS (moto on 127.0.0.1 locally, AWS in production): kombu
takes the SQS endpoint from the broker URL's host, so ``AWS_ENDPOINT_URL``
becomes ``sqs://KEY:SECRET@HOST:PORT``. ``CELERY_BROKER_URL`` overrides it.
See the README for every variable.
"""

from __future__ import annotations

import os
from urllib.parse import quote, urlparse

from producers.config import Settings, env_float, env_int

_settings = Settings.from_env()
_aws = _settings.aws


def _sqs_broker_url() -> str:
    explicit = os.environ.get("CELERY_BROKER_URL", "").strip()
    if explicit:
        return explicit
    if not _aws.endpoint_url:
        # Real AWS: kombu takes credentials from boto3's usual chain.
        return "sqs://"
    endpoint = urlparse(_aws.endpoint_url)
    user = quote(_aws.access_key_id, safe="")
    secret = quote(_aws.secret_access_key, safe="")
    return f"sqs://{user}:{secret}@{endpoint.hostname}:{endpoint.port or 80}"


broker_url = _sqs_broker_url()
broker_transport_options = {
    "region": _aws.region,
    "is_secure": bool(_aws.endpoint_url and _aws.endpoint_url.startswith("https")),
    "queue_name_prefix": _settings.queue_prefix,
    # Longer than the longest batch: a message comes back only when its
    # worker died (the heartbeat-protected lock bounds a batch's time).
    "visibility_timeout": env_int(os.environ, "CHROMASYNC_VISIBILITY_TIMEOUT", 300, minimum=1),
    "polling_interval": env_float(os.environ, "CHROMASYNC_POLLING_INTERVAL", 0.5),
    "wait_time_seconds": env_int(os.environ, "CHROMASYNC_WAIT_TIME_SECONDS", 1),
}
broker_connection_retry_on_startup = True
broker_connection_max_retries = env_int(os.environ, "CHROMASYNC_BROKER_MAX_RETRIES", 10)

task_serializer = "json"
accept_content = ["json"]
result_serializer = "json"
task_ignore_result = True
result_backend = None

# Exactly-once in effect: ack only after the Chroma write has returned; a
# worker that dies mid-batch leaves its message to come back.
task_acks_late = True
task_reject_on_worker_lost = True
worker_prefetch_multiplier = 1
worker_concurrency = 1
worker_disable_rate_limits = True
worker_hijack_root_logger = False

task_default_queue = _settings.queue_for(_settings.lines_collection)
task_create_missing_queues = True

timezone = "UTC"
enable_utc = True
