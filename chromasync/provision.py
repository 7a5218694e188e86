"""Creating what the pipeline needs in AWS (or moto): the only code that creates anything.

Producer, poller, worker, lock and dead-letter code only look resources up
(:mod:`chromasync.core.resources`); their roles may not create (``deploy/iam``).
``chromasync provision`` runs :func:`provision`, which creates, for the
settings in the environment:

* every target's queue (each collection's, and each other sink's in
  ``CHROMASYNC_SINKS``) with an SQS RedrivePolicy onto its dead-letter
  queue (the safety net for a worker that dies mid-task again and again; the
  worker itself dead-letters what it cannot apply, with details);
* the quarantine queue of malformed stream records;
* the poller's checkpoint table and the lock table, when their URLs name
  DynamoDB tables;
* what each sink in ``CHROMASYNC_SINKS`` declares (its ``provision``: the
  dashboard's table, with its TTL attribute);
* the snapshot bucket (unless told not to);
* with ``--table``, the source table with its stream (local setups only: on
  AWS the table belongs to the service that writes it).

Every step is idempotent: running it again changes nothing that exists.
``deploy/cloudformation.yaml`` declares the same resources for AWS.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from chromasync.core.config import AwsSettings, Settings
from chromasync.core.keys import PK_SK_KEYS

if TYPE_CHECKING:
    from tasks.config import WorkerSettings

#: Receives of one message before SQS moves it to the dead-letter queue.
MAX_RECEIVE_COUNT = 10
#: Largest task message, bytes: the 256 KiB the producer packs for
#: (producers.packing). SQS and moto now default to 1 MiB; setting it on the
#: queue makes a message over our limit fail loudly, locally too.
MAX_MESSAGE_BYTES = 262_144
#: ``CreateTable`` arguments of the source table (``--table``): PK/SK strings, a
#: ``NEW_AND_OLD_IMAGES`` stream (the producer needs both images to see what changed).
SOURCE_TABLE_SCHEMA: dict[str, Any] = {
    **PK_SK_KEYS,
    "BillingMode": "PAY_PER_REQUEST",
    "StreamSpecification": {"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
}


@dataclass(frozen=True)
class Provisioned:
    """One resource provisioning made sure of, for the command's report."""

    #: ``SQS queue``, ``DynamoDB table`` or ``S3 bucket``.
    kind: str
    name: str
    #: Its URL, ARN or stream ARN.
    detail: str

    def line(self) -> str:
        return f"{self.kind} {self.name}: {self.detail}"


def _sqs(settings: Settings, client: Any | None) -> Any:
    import boto3

    return client or boto3.client("sqs", **settings.aws.client_kwargs())


def _dynamodb(settings: Settings, client: Any | None) -> Any:
    import boto3

    return client or boto3.client("dynamodb", **settings.aws.client_kwargs())


def ensure_queues(settings: Settings, client: Any | None = None) -> dict[str, str]:
    """Create each collection's queue and dead-letter queue, and the quarantine queue;
    return name → URL.

    The visibility timeout is ``CHROMASYNC_VISIBILITY_TIMEOUT`` (the same value
    the workers' kombu transport uses), set on the queue itself: SQS hides a
    received message for the *queue's* timeout.
    """
    from producers.quarantine import QUARANTINE_RETENTION_SECONDS, Quarantine
    from tasks.deadletter import dead_letter_queue_attributes

    sqs = _sqs(settings, client)
    urls: dict[str, str] = {}
    for collection in settings.targets:
        dlq_name = settings.dlq_name(collection)
        fifo: dict[str, str] = {"FifoQueue": "true"} if settings.fifo else {}
        dlq_url = sqs.create_queue(
            QueueName=dlq_name, Attributes=dead_letter_queue_attributes(settings.fifo)
        )["QueueUrl"]
        dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])[
            "Attributes"
        ]["QueueArn"]
        name = settings.sqs_queue_name(collection)
        url = sqs.create_queue(
            QueueName=name,
            Attributes={
                "VisibilityTimeout": str(settings.visibility_timeout),
                "MaximumMessageSize": str(MAX_MESSAGE_BYTES),
                "RedrivePolicy": json.dumps(
                    {"deadLetterTargetArn": dlq_arn, "maxReceiveCount": MAX_RECEIVE_COUNT}
                ),
                **fifo,
            },
        )["QueueUrl"]
        urls[name] = url
        urls[dlq_name] = dlq_url
    quarantine = Quarantine(settings).queue_name
    urls[quarantine] = sqs.create_queue(
        QueueName=quarantine,
        Attributes={"MessageRetentionPeriod": str(QUARANTINE_RETENTION_SECONDS)},
    )["QueueUrl"]
    return urls


def ensure_dynamodb_table(dynamodb: Any, name: str, schema: Mapping[str, Any]) -> dict[str, Any]:
    """Create a table unless it exists, wait until it is ACTIVE; return its description."""
    # ResourceInUse: made before (or by another provisioner at the same moment).
    with contextlib.suppress(dynamodb.exceptions.ResourceInUseException):
        dynamodb.create_table(TableName=name, **schema)
    dynamodb.get_waiter("table_exists").wait(
        TableName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 60}
    )
    description: dict[str, Any] = dynamodb.describe_table(TableName=name)["Table"]
    return description


def ensure_sink_tables(worker: WorkerSettings, dynamodb: Any) -> list[Provisioned]:
    """The tables of every sink ``CHROMASYNC_SINKS`` turns on (``Sink.tables``), TTL on."""
    from tasks.sinks import sink_class

    done = []
    for sink in worker.shared.sinks:
        for table in sink_class(sink).tables(worker):
            arn = ensure_dynamodb_table(dynamodb, table.name, table.schema)["TableArn"]
            if table.ttl_attribute:
                ensure_ttl(dynamodb, table.name, table.ttl_attribute)
            done.append(Provisioned("DynamoDB table", table.name, str(arn)))
    return done


def ensure_ttl(dynamodb: Any, table: str, attribute: str) -> None:
    """Turn on DynamoDB's TTL on ``attribute`` unless it is on already."""
    current = dynamodb.describe_time_to_live(TableName=table)["TimeToLiveDescription"]
    if current.get("TimeToLiveStatus") in ("ENABLED", "ENABLING"):
        return
    dynamodb.update_time_to_live(
        TableName=table, TimeToLiveSpecification={"Enabled": True, "AttributeName": attribute}
    )


def ensure_lock_table(aws: AwsSettings, table: str) -> str:
    """Create a DynamoDB lock table (``CHROMASYNC_LOCK_URL=dynamodb://TABLE``); return its ARN."""
    import boto3

    from tasks.locks.backends.dynamodb import LOCK_TABLE_SCHEMA

    client = boto3.client("dynamodb", **aws.client_kwargs())
    try:
        return str(ensure_dynamodb_table(client, table, LOCK_TABLE_SCHEMA)["TableArn"])
    finally:
        client.close()


def ensure_table(settings: Settings, client: Any | None = None) -> str:
    """Create the source table with a NEW_AND_OLD_IMAGES stream; return the stream ARN."""
    table = ensure_dynamodb_table(_dynamodb(settings, client), settings.table, SOURCE_TABLE_SCHEMA)
    return str(table["LatestStreamArn"])


def ensure_bucket(settings: Settings, bucket: str, client: Any | None = None) -> None:
    """Create an S3 bucket in the settings' region unless this account already owns it.

    A name another account owns is a :class:`~chromasync.core.config.ConfigError`
    naming the variable to change (bucket names are global on AWS).
    """
    import boto3
    from botocore.exceptions import ClientError

    from chromasync.core.config import ConfigError
    from chromasync.core.resources import error_code

    s3 = client or boto3.client("s3", **settings.aws.client_kwargs())
    request: dict[str, Any] = {"Bucket": bucket}
    if settings.aws.region != "us-east-1":
        request["CreateBucketConfiguration"] = {"LocationConstraint": settings.aws.region}
    try:
        s3.create_bucket(**request)
    except ClientError as exc:
        code = error_code(exc)
        if code == "BucketAlreadyExists":
            raise ConfigError(
                f"S3 bucket {bucket!r} belongs to another account (names are global); set "
                "CHROMASYNC_SNAPSHOT_BUCKET to a name of yours, or pass --no-snapshot-bucket"
            ) from exc
        if code != "BucketAlreadyOwnedByYou":
            raise


def provision(
    env: Mapping[str, str],
    *,
    source_table: bool = False,
    snapshot_bucket: bool = True,
) -> list[Provisioned]:
    """Create everything the settings in ``env`` name (see the module docstring)."""
    from producers.checkpoints import checkpoint_table
    from producers.checkpoints.backends.dynamodb import CHECKPOINT_TABLE_SCHEMA
    from tasks.config import WorkerSettings
    from tasks.locks import lock_table
    from tasks.locks.backends.dynamodb import LOCK_TABLE_SCHEMA

    worker = WorkerSettings.from_env(env)
    settings = worker.shared
    dynamodb = _dynamodb(settings, None)
    done: list[Provisioned] = []
    if source_table:
        done.append(Provisioned("DynamoDB table", settings.table, ensure_table(settings, dynamodb)))
    for name, url in ensure_queues(settings).items():
        done.append(Provisioned("SQS queue", name, url))
    checkpoints = checkpoint_table(env)
    if checkpoints is not None:
        arn = ensure_dynamodb_table(dynamodb, checkpoints, CHECKPOINT_TABLE_SCHEMA)["TableArn"]
        done.append(Provisioned("DynamoDB table", checkpoints, str(arn)))
    locks = lock_table(worker.lock_url)
    if locks is not None:
        arn = ensure_dynamodb_table(dynamodb, locks, LOCK_TABLE_SCHEMA)["TableArn"]
        done.append(Provisioned("DynamoDB table", locks, str(arn)))
    done += ensure_sink_tables(worker, dynamodb)
    if snapshot_bucket:
        ensure_bucket(settings, worker.snapshot_bucket)
        done.append(
            Provisioned("S3 bucket", worker.snapshot_bucket, f"s3://{worker.snapshot_bucket}")
        )
    return done


@dataclass(frozen=True)
class QueueDepth:
    """One queue's message counts, from its SQS attributes (approximate, as SQS says)."""

    name: str
    collection: str | None
    #: ``queue``, ``dead_letter`` or ``quarantine``.
    kind: str
    exists: bool
    visible: int = 0
    in_flight: int = 0
    delayed: int = 0

    @property
    def empty(self) -> bool:
        """No message waiting, received or delayed (a queue not created holds none)."""
        return self.visible == self.in_flight == self.delayed == 0


def queue_names(settings: Settings) -> list[tuple[str, str | None, str]]:
    """(name, collection, kind) of every queue the system uses, the quarantine last."""
    from producers.quarantine import Quarantine

    names: list[tuple[str, str | None, str]] = []
    for collection in settings.targets:
        names.append((settings.sqs_queue_name(collection), collection, "queue"))
    for collection in settings.targets:
        names.append((settings.dlq_name(collection), collection, "dead_letter"))
    names.append((Quarantine(settings).queue_name, None, "quarantine"))
    return names


def queue_depth(
    sqs: Any, name: str, collection: str | None = None, kind: str = "queue"
) -> QueueDepth:
    """One queue's message counts from its SQS attributes; a queue not created yet says so."""
    from botocore.exceptions import ClientError

    from chromasync.core.resources import MISSING_QUEUE_CODES, error_code

    try:
        url = sqs.get_queue_url(QueueName=name)["QueueUrl"]
        attrs = sqs.get_queue_attributes(
            QueueUrl=url,
            AttributeNames=[
                "ApproximateNumberOfMessages",
                "ApproximateNumberOfMessagesNotVisible",
                "ApproximateNumberOfMessagesDelayed",
            ],
        )["Attributes"]
    except ClientError as exc:
        if error_code(exc) in MISSING_QUEUE_CODES:
            return QueueDepth(name, collection, kind, exists=False)
        raise
    return QueueDepth(
        name,
        collection,
        kind,
        exists=True,
        visible=int(attrs.get("ApproximateNumberOfMessages", 0)),
        in_flight=int(attrs.get("ApproximateNumberOfMessagesNotVisible", 0)),
        delayed=int(attrs.get("ApproximateNumberOfMessagesDelayed", 0)),
    )


def queue_depths(settings: Settings, client: Any | None = None) -> list[QueueDepth]:
    """Depth of every queue from its SQS attributes; a queue not created yet says so."""
    sqs = _sqs(settings, client)
    return [queue_depth(sqs, *named) for named in queue_names(settings)]


def queues_empty(
    settings: Settings, client: Any | None = None, include_dead_letters: bool = False
) -> bool:
    """Every collection's task queue (and, if asked, its dead-letter queue) is empty."""
    kinds = {"queue", "dead_letter"} if include_dead_letters else {"queue"}
    return all(d.empty for d in queue_depths(settings, client) if d.kind in kinds)
