"""Before a worker consumes (or ``chromasync run`` says "running"): every setting read, every
service it writes to answered.

Why at start: a worker whose lock URL is wrong, or whose Chroma is out of reach, still
logs "ready" and receives tasks; each one fails unacknowledged and reaches the
dead-letter queue only after ``maxReceiveCount`` visibility timeouts (50 minutes by
default). Refusing to start turns that into one log line and an exit status: 2 for a
setting (:class:`~chromasync.core.config.ConfigError`), 3 for a service that is missing,
denied (:class:`~chromasync.core.resources.DeploymentError`) or does not answer
(:class:`ServiceUnreachable`), as the ``chromasync`` commands do.

The probes make only calls the worker's role may make (``deploy/iam/worker.json``), and
write nothing:

* SQS: ``GetQueueUrl`` of each consumed collection's queue and dead-letter queue;
* the source table: ``GetItem`` of a key no entity has;
* a DynamoDB lock table: an ``UpdateItem`` whose condition can never hold (the role may
  not ``GetItem`` there), so it answers ``ConditionalCheckFailed`` and changes nothing;
  a Redis lock store: ``PING``;
* Chroma: a server's heartbeat, or each embedded directory created and writable.

Metrics and worker events are best effort (a worker runs without them), so only their
URLs are checked, not their Redis.
"""

from __future__ import annotations

import logging
import os
import tempfile
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any
from urllib.parse import urlsplit

from chromasync.core.config import ConfigError
from chromasync.core.exits import EXIT_CONFIG, EXIT_UNAVAILABLE
from chromasync.core.resources import (
    DeploymentError,
    naming_missing_table,
    not_permitted,
    queue_url,
)
from chromasync.core.sinks import CHROMA
from chromasync.core.urls import redact_url
from tasks.config import WorkerSettings
from tasks.sinks import sink_class

log = logging.getLogger(__name__)

#: Seconds each probe may take to connect, and again to answer (a start may wait
#: this long per service before it calls the service unreachable).
PREFLIGHT_TIMEOUT = 5.0
#: Attempts of each AWS probe (botocore's standard retry mode), for a blip at start.
PREFLIGHT_ATTEMPTS = 3
#: Key of the probes' GetItem and UpdateItem: no entity or lock has it.
PROBE_KEY = "CHROMASYNC#PREFLIGHT"


class ServiceUnreachable(ConnectionError):
    """A service the worker needs did not answer its probe (exit status 3)."""


@dataclass(frozen=True)
class Probe:
    """One service to reach: what it is (for messages) and the call that reaches it."""

    service: str
    call: Callable[[], object]


def exit_status(exc: BaseException) -> int:
    """The exit status a preflight failure means."""
    return EXIT_CONFIG if isinstance(exc, ConfigError) else EXIT_UNAVAILABLE


def check_settings(env: Mapping[str, str] | None = None) -> WorkerSettings:
    """Read every setting a worker reads; :class:`ConfigError` names the first wrong one."""
    from chromasync.core.celery_settings import celery_settings
    from chromasync.core.logs import log_format
    from tasks.locks import lock_location
    from tasks.metrics.store import metrics_url

    env = os.environ if env is None else env
    settings = WorkerSettings.from_env(env)
    # The lock URL's own rules (a table name, a Redis host), then one a worker can share.
    if lock_location(settings.lock_url).kind == "memory":
        raise ConfigError(
            f"CHROMASYNC_LOCK_URL={settings.lock_url!r} keeps locks inside one process, "
            "but a worker's pool, other workers and `chromasync run` are other processes "
            "that would write at the same time; use redis://HOST:PORT/DB or dynamodb://TABLE"
        )
    metrics_url(env)
    log_format(env)
    celery_settings(env)
    _check_events_url(env)
    for sink in settings.shared.sinks:
        sink_class(sink).check_settings(settings)
    return settings


def _check_events_url(env: Mapping[str, str]) -> None:
    from tasks.events import events_url

    url = events_url(env)
    name = "CHROMASYNC_EVENTS_URL" if env.get("CHROMASYNC_EVENTS_URL", "").strip() else "REDIS_URL"
    parts = urlsplit(url)
    if parts.scheme not in ("redis", "rediss") or not parts.netloc:
        raise ConfigError(
            f"{name}={url!r} is not a valid URL; expected redis://... or rediss://..."
        )


def _aws_config() -> Any:
    from botocore.config import Config

    return Config(
        connect_timeout=PREFLIGHT_TIMEOUT,
        read_timeout=PREFLIGHT_TIMEOUT,
        retries={"mode": "standard", "max_attempts": PREFLIGHT_ATTEMPTS},
    )


def aws_client(settings: WorkerSettings, service: str) -> Any:
    """A boto3 client with the probes' short timeouts."""
    import boto3

    return boto3.client(service, config=_aws_config(), **settings.shared.aws.client_kwargs())


def queue_probes(sqs: Any, names: Sequence[str]) -> list[Probe]:
    """``GetQueueUrl`` of each queue: :class:`MissingResource` names one not provisioned."""
    return [Probe(f"SQS queue {name!r}", partial(queue_url, sqs, name)) for name in names]


def _source_table(settings: WorkerSettings, dynamodb: Any) -> None:
    """A GetItem of a key no item has, where the worker will read the table: at
    ``CHROMASYNC_TABLE_ENDPOINT_URL`` when it is set (a client of its own), else
    with the other services (``dynamodb``)."""
    table = settings.shared.table
    if settings.shared.aws.table_endpoint_url is not None:
        import boto3

        aws = settings.shared.aws
        dynamodb = boto3.client("dynamodb", config=_aws_config(), **aws.table_client_kwargs())
    with naming_missing_table(dynamodb, table):
        dynamodb.get_item(TableName=table, Key={"PK": {"S": PROBE_KEY}, "SK": {"S": PROBE_KEY}})


def _lock_store(settings: WorkerSettings, dynamodb: Any) -> None:
    from botocore.exceptions import ClientError

    from tasks.locks import lock_table
    from tasks.locks.backends.dynamodb import KEY_ATTRIBUTE

    table = lock_table(settings.lock_url)
    if table is None:
        import redis

        client = redis.Redis.from_url(
            settings.lock_url.strip(),
            socket_timeout=PREFLIGHT_TIMEOUT,
            socket_connect_timeout=PREFLIGHT_TIMEOUT,
        )
        try:
            client.ping()
        finally:
            client.close()
        return
    try:
        with naming_missing_table(dynamodb, table):
            dynamodb.update_item(
                TableName=table,
                Key={KEY_ATTRIBUTE: {"S": PROBE_KEY}},
                UpdateExpression="SET #probe = :probe",
                # Never true: the table answers (or says it is missing), nothing is written.
                ConditionExpression="attribute_exists(#probe) AND attribute_not_exists(#probe)",
                ExpressionAttributeNames={"#probe": "probe"},
                ExpressionAttributeValues={":probe": {"BOOL": True}},
            )
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
            raise


def _chroma_server(url: str) -> None:
    from tasks.chroma.targets.server import ServerChromaTarget

    target = ServerChromaTarget(url)
    scheme = "https" if target.ssl else "http"
    heartbeat = f"{scheme}://{target.host}:{target.port}/api/v2/heartbeat"
    with urllib.request.urlopen(heartbeat, timeout=PREFLIGHT_TIMEOUT) as response:
        response.read()


def _chroma_directory(settings: WorkerSettings, collection: str) -> None:
    """Create the collection's directory and write a file in it, as the worker will."""
    path = settings.chroma_dir / collection
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as exc:
        raise ConfigError(
            f"CHROMASYNC_CHROMA_DIR={str(settings.chroma_dir)!r}: the directory {str(path)!r} "
            f"cannot be created or written ({exc.strerror or exc}); point it at a writable "
            "directory"
        ) from exc


def worker_probes(
    settings: WorkerSettings, collections: Sequence[str], sqs: Any, dynamodb: Any
) -> list[Probe]:
    """What a worker consuming ``collections`` (targets) must reach before it consumes."""
    shared = settings.shared
    names = [shared.sqs_queue_name(c) for c in collections]
    names += [shared.dlq_name(c) for c in collections]
    probes = queue_probes(sqs, names)
    for target in collections:
        sink = shared.sink_of(target)
        if sink != CHROMA:
            for service, call in sink_class(sink).probes(settings, target, dynamodb):
                probes.append(Probe(service, call))
    collections = [c for c in collections if c in shared.collections]
    probes.append(
        Probe(f"DynamoDB table {shared.table!r}", lambda: _source_table(settings, dynamodb))
    )
    probes.append(
        Probe(
            f"lock store {redact_url(settings.lock_url)}", lambda: _lock_store(settings, dynamodb)
        )
    )
    if not collections:
        return probes
    if settings.chroma_url:
        url = settings.chroma_url
        probes.append(Probe(f"Chroma server at {url}", lambda: _chroma_server(url)))
    else:
        for collection in collections:
            probes.append(
                Probe(
                    f"Chroma directory of {collection}",
                    partial(_chroma_directory, settings, collection),
                )
            )
    return probes


def run_probes(probes: Sequence[Probe]) -> None:
    """Run every probe in order; the first failure is raised as what it means.

    A setting (:class:`ConfigError`) or a missing resource goes up as it is; a call
    the role may not make becomes :class:`~chromasync.core.resources.NotPermitted`; any
    other failure is :class:`ServiceUnreachable` naming the service.
    """
    for probe in probes:
        try:
            probe.call()
        except (ConfigError, DeploymentError):
            raise
        except Exception as exc:
            denied = not_permitted(exc, f"the probe of {probe.service}")
            if denied is not None:
                raise denied from exc
            raise ServiceUnreachable(
                f"{probe.service} did not answer: {type(exc).__name__}: {exc}"
            ) from exc


def check_worker(
    collections: Sequence[str] | None = None, env: Mapping[str, str] | None = None
) -> WorkerSettings:
    """Every setting, then every service a worker of ``collections`` (default: all) needs."""
    settings = check_settings(env)
    wanted = list(collections or settings.shared.targets)
    sqs, dynamodb = aws_client(settings, "sqs"), aws_client(settings, "dynamodb")
    try:
        run_probes(worker_probes(settings, wanted, sqs, dynamodb))
    finally:
        sqs.close()
        dynamodb.close()
    return settings
