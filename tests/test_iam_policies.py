"""The least-privilege policies of deploy/iam, proven against IAM enforcement (moto server).

For each role, an IAM user holding exactly its policy runs that role's real
work, through the same code paths as in production:

* ``producer-lambda``: an event source mapping stand-in reads the table's
  stream with the role's keys (the four calls Lambda checks it may make:
  ListStreams, DescribeStream, GetShardIterator, GetRecords), and the handler
  runs in a fresh interpreter on a batch with one malformed record: tasks
  published, the bad record quarantined, nothing reported failed;
* ``poller``: ``chromasync poll --once`` publishes, quarantines, checkpoints;
* ``worker``: a ``celery`` worker process with the DynamoDB lock applies a
  line edit, waits for a compaction run's delta (a retry sent to its own
  queue), merges it and marks the run merged (an UpdateItem the policy
  limits to the merge attributes), dead-letters a bad payload, records its
  progress; then a worker of the ``dashboard`` target (the deployment runs
  ``CHROMASYNC_SINKS=chroma,dashboard``) projects a receipt into the
  dashboard table and moves it when its merchant is renamed (a transaction
  of Puts and a Delete, each authorised as its own action), then applies
  the repair ``verify --sink dashboard --repair`` sends for an item no
  manifest lists (found by a Query of the ``by_receipt`` index, never a Scan);
* ``operator``: ``chromasync status``, ``dlq list|redrive|purge``,
  ``verify --repair``, ``verify --sink dashboard --repair``,
  ``snapshot publish|list|restore``.

Then every action is shown to be needed: for each (statement, action) of a
policy, the same work with that one action removed fails, and fails because
something was denied. Finally a few calls each role must *not* be able to
make are refused (creating anything, writing other attributes, other queues).

What enforces it is moto's IAM check with chromasync's fidelity layer
(:mod:`chromasync.motoiam`): resources resolved to ARNs as AWS's Service
Authorization Reference says, conditions evaluated, unknown ones denied.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import boto3
import pytest

from chromasync.core.contract import Change, ChangeBatch, ChangeKeys, EventName
from chromasync.core.entities import EntityType
from chromasync.core.keys import image_pk, line_sk, receipt_sk
from chromasync.core.sinks import DASHBOARD
from chromasync.local import MotoServer, wait_for
from chromasync.provision import queue_depth
from chromasync.seed import (
    delta_tarball,
    demo_receipts,
    embedding_records,
    merchant_fields,
    seed_chroma,
    seed_table,
)
from chromasync.workers import WorkerProcess
from producers.publishing import Publisher, producer_app
from producers.quarantine import QUARANTINE_SUFFIX
from tasks.chroma.targets.embedded import EmbeddedChromaTarget
from tasks.deadletter import DeadLetter, DeadLetterQueues
from tests.iam import ROLES, Deployment, actions, admin_keys, policy_file, without

pytestmark = pytest.mark.slow

#: Seconds a role's work may take before it counts as failed.
WORK_TIMEOUT = 60.0
#: Words that show a failure was a refusal (boto3, kombu, our own NotPermitted).
DENIED = ("accessdenied", "access denied", "was denied", "not authorized", "(403)")


class WorkFailed(AssertionError):
    """A role's work did not do what it should; the message carries the evidence."""


def denied(text: str) -> bool:
    lowered = text.lower()
    return any(word in lowered for word in DENIED)


@pytest.fixture(scope="module")
def iam_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[MotoServer, dict]]:
    """A moto server of this module's own, enforcing IAM once the admin user exists."""
    server = MotoServer.start(log=tmp_path_factory.mktemp("moto-iam") / "moto.log")
    try:
        admin = admin_keys(server)
        server.enforce_iam()
        yield server, admin
    finally:
        server.stop()


@pytest.fixture
def deployment(iam_server: tuple[MotoServer, dict], tmp_path: Path) -> Deployment:
    server, admin = iam_server
    return Deployment(server, admin, tmp_path)


# -- helpers ---------------------------------------------------------------------------------


def receive_all(d: Deployment, queue: str) -> list[dict[str, Any]]:
    """Every message of a queue (admin), left invisible for a minute: the test reads, not acks."""
    sqs = d.client("sqs", d.admin)
    url = sqs.get_queue_url(QueueName=queue)["QueueUrl"]
    got: list[dict[str, Any]] = []
    while True:
        page = sqs.receive_message(
            QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=60, WaitTimeSeconds=0
        ).get("Messages", [])
        if not page:
            return got
        got += page


def queue_counts(d: Deployment, queue: str) -> tuple[int, int, int]:
    """(visible, in flight, delayed) of a queue, as SQS says (admin)."""
    depth = queue_depth(d.client("sqs", d.admin), queue)
    return depth.visible, depth.in_flight, depth.delayed


def table(d: Deployment) -> Any:
    return boto3.resource(
        "dynamodb",
        endpoint_url=d.server.url,
        region_name="us-east-1",
        aws_access_key_id=d.admin["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=d.admin["AWS_SECRET_ACCESS_KEY"],
    ).Table(d.table)


def write_stream_records(d: Deployment) -> str:
    """A line INSERT and a malformed record (our key shape, a broken id) in the table's stream."""
    image = str(uuid.uuid4())
    items = table(d)
    items.put_item(Item={"PK": image_pk(image), "SK": line_sk(1, 1), "text": "hello"})
    items.put_item(Item={"PK": image_pk(image), "SK": "RECEIPT#abc#LINE#00001", "text": "x"})
    return image


def check_published(d: Deployment) -> None:
    """One task on the lines queue and one on the dashboard's (a line INSERT goes to
    both), one record in the quarantine (admin reads them)."""
    tasks = receive_all(d, d.settings.sqs_queue_name(d.settings.lines_collection))
    dashboard = receive_all(d, d.settings.sqs_queue_name(DASHBOARD))
    rejects = receive_all(d, f"{d.settings.queue_prefix}{QUARANTINE_SUFFIX}")
    if (len(tasks), len(dashboard), len(rejects)) != (1, 1, 1):
        raise WorkFailed(
            "expected 1 lines task, 1 dashboard task and 1 quarantined record, got "
            f"{len(tasks)}, {len(dashboard)}, {len(rejects)}"
        )
    assert "RECEIPT#abc#LINE#00001" in rejects[0]["Body"]


def run(
    d: Deployment, creds: dict[str, str], args: list[str], stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        args,
        input=stdin,
        env=d.role_env(creds),
        capture_output=True,
        text=True,
        timeout=WORK_TIMEOUT,
    )


def cli(
    d: Deployment, creds: dict[str, str], *args: str, expect: int = 0
) -> subprocess.CompletedProcess[str]:
    """``chromasync ARGS`` as the role; WorkFailed (with its output) on another exit status."""
    done = run(d, creds, [sys.executable, "-m", "chromasync.cli", *args])
    if done.returncode != expect:
        raise WorkFailed(
            f"chromasync {' '.join(args)} exited {done.returncode}, not {expect}:\n"
            f"{done.stdout}\n{done.stderr}"
        )
    return done


# -- the producer Lambda ---------------------------------------------------------------------


def _epoch(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.timestamp()
    raise TypeError(type(value).__name__)


def event_source_mapping(d: Deployment, creds: dict[str, str]) -> dict[str, Any]:
    """What Lambda's event source mapping does with the function's role: find the stream,
    read its shard from the start, and hand the records over as a Lambda event."""
    streams = d.client("dynamodbstreams", creds)
    arn = streams.list_streams(TableName=d.table)["Streams"][0]["StreamArn"]
    shard = streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"][0]
    iterator = streams.get_shard_iterator(
        StreamArn=arn, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
    )["ShardIterator"]
    records = streams.get_records(ShardIterator=iterator, Limit=100)["Records"]
    for record in records:
        record["eventSourceARN"] = arn
    # A Lambda event carries epoch seconds where boto3 parses a datetime.
    loaded: dict[str, Any] = json.loads(json.dumps({"Records": records}, default=_epoch))
    return loaded


#: The handler in a fresh interpreter, as a new Lambda container runs it.
HANDLER = (
    "import json, sys\n"
    "from producers.lambda_handler import handler\n"
    "print(json.dumps(handler(json.load(sys.stdin), None)))\n"
)


def lambda_work(d: Deployment, creds: dict[str, str], tmp: Path) -> None:
    write_stream_records(d)
    event = event_source_mapping(d, creds)
    done = run(d, creds, [sys.executable, "-c", HANDLER], stdin=json.dumps(event))
    if done.returncode != 0:
        raise WorkFailed(f"the handler failed:\n{done.stderr}")
    response = json.loads(done.stdout.strip().splitlines()[-1])
    if response != {"batchItemFailures": []}:
        raise WorkFailed(f"records reported failed: {response}\n{done.stderr}")
    check_published(d)


# -- the poller ------------------------------------------------------------------------------


def poller_work(d: Deployment, creds: dict[str, str], tmp: Path) -> None:
    write_stream_records(d)
    cli(d, creds, "poll", "--once")
    check_published(d)
    checkpoints = d.client("dynamodb", d.admin).scan(TableName=d.checkpoint_table)["Items"]
    if not any("sequence_number" in item for item in checkpoints):
        raise WorkFailed(f"no checkpoint written: {checkpoints}")


# -- the worker ------------------------------------------------------------------------------


def _change(entity: EntityType, event: EventName, keys: dict[str, Any], seq: int) -> Change:
    return Change(
        entity_type=entity,
        event_name=event,
        keys=ChangeKeys(**keys),
        sequence_number=str(seq),
        event_id=f"iam-{seq}",
    )


@dataclass
class WorkerRun:
    """One worker process of the lines collection, watched for refusals."""

    process: WorkerProcess

    def until(self, condition: Callable[[], Any], what: str) -> None:
        """Poll ``condition``; fail at once when the worker has logged a refusal or died.

        The whole log is read each time: a refusal early on may be followed by
        hundreds of lines of retries.
        """
        deadline = time.monotonic() + WORK_TIMEOUT
        while True:
            log = self.process.log_path.read_text(errors="replace") if self.process.log_path else ""
            if denied(log) or not self.process.alive():
                raise WorkFailed(f"{what}: the worker was refused or died:\n{log[-20_000:]}")
            if condition():
                return
            if time.monotonic() >= deadline:
                raise WorkFailed(f"timed out waiting for {what}:\n{self.process.log_tail(80)}")
            time.sleep(0.2)


def worker_work(d: Deployment, creds: dict[str, str], tmp: Path) -> None:
    lines = d.settings.lines_collection
    edited, merged = demo_receipts(2, lines=2, words_per_line=1)
    seed_table(table(d), [edited, merged])
    target = EmbeddedChromaTarget(tmp / "chroma")
    seed_chroma(target, lines, "lines", [edited])
    target.close()
    items = table(d)
    items.update_item(
        Key={"PK": image_pk(edited.image_id), "SK": line_sk(edited.receipt_id, 1)},
        UpdateExpression="SET #t = :t",
        ExpressionAttributeNames={"#t": "text"},
        ExpressionAttributeValues={":t": "edited by the iam test"},
    )
    run_id = uuid.uuid4().hex
    run_key = {
        "PK": image_pk(merged.image_id),
        "SK": f"{receipt_sk(merged.receipt_id)}#COMPACTION_RUN#{run_id}",
    }
    delta_key = f"deltas/{run_id}/lines/"
    items.put_item(
        Item={
            **run_key,
            "TYPE": "COMPACTION_RUN",
            "lines_delta_prefix": delta_key,  # a bare prefix: CHROMASYNC_DELTA_BUCKET resolves it
        }
    )
    publisher = Publisher(d.settings, producer_app({**d.env, **d.admin}))
    publisher.publish(
        ChangeBatch(
            collection=lines,
            changes=[
                _change(
                    EntityType.RECEIPT_LINE,
                    "MODIFY",
                    {"image_id": edited.image_id, "receipt_id": edited.receipt_id, "line_id": 1},
                    1,
                ),
                _change(
                    EntityType.COMPACTION_RUN,
                    "INSERT",
                    {
                        "image_id": merged.image_id,
                        "receipt_id": merged.receipt_id,
                        "run_id": run_id,
                    },
                    2,
                ),
            ],
        )
    )
    app = publisher.app
    app.send_task("chromasync.apply_changes", args=[{"not": "a batch"}], queue=lines)

    worker = WorkerRun(
        WorkerProcess.start(
            lines, d.settings.queue_for(lines), d.role_env(creds), tmp / "worker.log"
        )
    )
    try:
        reader = EmbeddedChromaTarget(tmp / "chroma")

        def line_edited() -> bool:
            got = reader.collection(lines).get(
                ids=[f"{image_pk(edited.image_id)}#{line_sk(edited.receipt_id, 1)}"],
                include=["metadatas"],
            )
            return bool(got["metadatas"]) and got["metadatas"][0].get("text") == (
                "edited by the iam test"
            )

        worker.until(line_edited, "the line edit in Chroma")
        worker.until(lambda: "deltas not in S3 yet" in worker.process.log_tail(400), "a retry")
        # The delta arrives after the worker has set the run aside and re-sent it.
        d.s3(d.admin).put_object(
            Bucket=d.env["CHROMASYNC_DELTA_BUCKET"],
            Key=f"{delta_key}delta.tar.gz",
            Body=delta_tarball(lines, embedding_records(merged, 1, "lines")),
        )

        def run_merged() -> bool:
            item = items.get_item(Key=run_key, ConsistentRead=True).get("Item", {})
            return item.get("lines_merge_status") == "COMPLETED"

        worker.until(run_merged, "the run marked merged")
        dlq = d.settings.dlq_name(lines)
        worker.until(lambda: queue_counts(d, dlq)[0] == 1, "a dead letter")
        queue = d.settings.sqs_queue_name(lines)
        worker.until(lambda: queue_counts(d, queue) == (0, 0, 0), "every task acknowledged")
        dynamodb = d.client("dynamodb", d.admin)

        def progress_recorded() -> bool:
            return "Item" in dynamodb.get_item(
                TableName=d.lock_table,
                Key={"lock_name": {"S": f"progress:collection:{lines}"}},
                ConsistentRead=True,
            )

        worker.until(progress_recorded, "progress recorded in the lock table")
        merged_ids = reader.collection(lines).get(where={"image_id": merged.image_id})["ids"]
        if len(merged_ids) != len(merged.line_ids()):
            raise WorkFailed(f"the delta was not merged: {merged_ids}")
        reader.close()
    finally:
        worker.process.stop()
    dashboard_work(d, creds, tmp)


def dashboard_merchants(d: Deployment, image_id: str) -> set[str]:
    """The partitions (``MERCHANT#...``) of an image's receipt items in the dashboard (admin)."""
    items = d.client("dynamodb", d.admin).scan(TableName=d.dashboard_table)["Items"]
    return {
        item["PK"]["S"]
        for item in items
        if item.get("kind", {}).get("S") == "receipt" and item["image_id"]["S"] == image_id
    }


def dashboard_item_keys(d: Deployment, image_id: str) -> set[tuple[str, str]]:
    """The keys of an image's items in the dashboard (admin, consistent)."""
    items = d.client("dynamodb", d.admin).scan(TableName=d.dashboard_table, ConsistentRead=True)[
        "Items"
    ]
    return {
        (item["PK"]["S"], item["SK"]["S"])
        for item in items
        if item.get("image_id", {}).get("S") == image_id
    }


def plant_stray(d: Deployment, image_id: str, receipt_id: int) -> tuple[str, str]:
    """A label item of the receipt that no manifest lists (admin): what a repair deletes.

    It carries ``receipt`` as every item the sink writes does, so the
    ``by_receipt`` index lists it under the receipt.
    """
    ref = f"{image_id}#{receipt_id:05d}"
    key = ("LABEL#STRAY#DAY#2026-01-01", f"RECEIPT#{ref}#LINE#00009#WORD#00009")
    d.client("dynamodb", d.admin).put_item(
        TableName=d.dashboard_table,
        Item={
            "PK": {"S": key[0]},
            "SK": {"S": key[1]},
            "kind": {"S": "label"},
            "image_id": {"S": image_id},
            "receipt_id": {"N": str(receipt_id)},
            "receipt": {"S": ref},
        },
    )
    return key


def dashboard_work(d: Deployment, creds: dict[str, str], tmp: Path) -> None:
    """The dashboard target's worker: probe the table, read manifests, put, move, repair.

    A receipt is projected (BatchGetItem of its manifest, Puts); its merchant is
    renamed, so the receipt item moves from one ``MERCHANT#`` partition to the
    other (a Delete in the same transaction). Then an item of the receipt that
    no manifest lists is planted and the operator's ``verify --sink dashboard
    --repair`` (run by the harness) sends its repair: the worker finds the item
    by a Query of the ``by_receipt`` index and deletes it.
    """
    receipt = demo_receipts(3, lines=2, words_per_line=1)[2]
    seed_table(table(d), [receipt])
    keys = {"image_id": receipt.image_id, "receipt_id": receipt.receipt_id}
    publisher = Publisher(d.settings, producer_app({**d.env, **d.admin}))
    publisher.publish(
        ChangeBatch(collection=DASHBOARD, changes=[_change(EntityType.RECEIPT, "INSERT", keys, 10)])
    )
    worker = WorkerRun(
        WorkerProcess.start(
            DASHBOARD,
            d.settings.queue_for(DASHBOARD),
            d.role_env(creds),
            tmp / "worker-dashboard.log",
        )
    )
    try:
        before = f"MERCHANT#{merchant_fields(0)['canonical_merchant_name']}"
        after = merchant_fields(0, edition=3)["canonical_merchant_name"]
        worker.until(
            lambda: dashboard_merchants(d, receipt.image_id) == {before},
            "the receipt in the dashboard",
        )
        table(d).update_item(
            Key={
                "PK": image_pk(receipt.image_id),
                "SK": f"{receipt_sk(receipt.receipt_id)}#METADATA",
            },
            UpdateExpression="SET canonical_merchant_name = :m",
            ExpressionAttributeValues={":m": after},
        )
        publisher.publish(
            ChangeBatch(
                collection=DASHBOARD,
                changes=[_change(EntityType.RECEIPT_METADATA, "MODIFY", keys, 11)],
            )
        )
        worker.until(
            lambda: dashboard_merchants(d, receipt.image_id) == {f"MERCHANT#{after}"},
            "the receipt moved to its new merchant",
        )
        moved = dashboard_item_keys(d, receipt.image_id)
        stray = plant_stray(d, receipt.image_id, receipt.receipt_id)
        found = cli(
            d,
            d.admin,
            "verify",
            "--sink",
            DASHBOARD,
            "--image",
            receipt.image_id,
            "--repair",
            expect=1,
        )
        if "1 extra" not in found.stdout:
            raise WorkFailed(f"verify --sink dashboard did not find the stray:\n{found.stdout}")
        worker.until(
            lambda: dashboard_item_keys(d, receipt.image_id) == moved,
            f"the repair to delete the stray {stray}",
        )
        queue = d.settings.sqs_queue_name(DASHBOARD)
        worker.until(lambda: queue_counts(d, queue) == (0, 0, 0), "every dashboard task acked")
    finally:
        worker.process.stop()


# -- the operator ----------------------------------------------------------------------------


def operator_work(d: Deployment, creds: dict[str, str], tmp: Path) -> None:
    lines = d.settings.lines_collection
    cli(d, creds, "status")
    # Dead letters: listed, redriven (back on the main queue), purged.
    letters = DeadLetterQueues(d.settings)
    now = time.time()
    for error in ("redrive me", "purge me"):
        letters.send(
            DeadLetter(lines, {"schema_version": 1}, "ContractViolation", error, "", 1, now, now)
        )
    listed = cli(d, creds, "dlq", "list", "--collection", lines)
    if listed.stdout.count("ContractViolation") != 2:
        raise WorkFailed(f"dlq list shows:\n{listed.stdout}")
    first = letters.peek(lines, 10)
    redrive = next(r for r in first if r.letter.error == "redrive me").message_id
    cli(d, creds, "dlq", "redrive", "--collection", lines, "--id", redrive)
    cli(d, creds, "dlq", "purge", "--collection", lines, "--yes")
    wait_for(lambda: queue_counts(d, d.settings.dlq_name(lines)) == (0, 0, 0), 30, what="empty")
    if len(receive_all(d, d.settings.sqs_queue_name(lines))) != 1:
        raise WorkFailed("the redriven letter is not on the main queue")
    # Verify against the table, with drift: exit 1, and --repair enqueues the fix.
    spec = demo_receipts(1, lines=2, words_per_line=1)[0]
    seed_table(table(d), [spec])
    target = EmbeddedChromaTarget(tmp / "chroma")
    seed_chroma(target, lines, "lines", [spec])
    seed_chroma(target, d.settings.words_collection, "words", [spec])
    target.close()
    table(d).update_item(
        Key={"PK": image_pk(spec.image_id), "SK": f"{receipt_sk(spec.receipt_id)}#METADATA"},
        UpdateExpression="SET merchant_name = :m",
        ExpressionAttributeValues={":m": merchant_fields(0, edition=7)["merchant_name"]},
    )
    cli(d, creds, "verify", "--repair", expect=1)
    if not receive_all(d, d.settings.sqs_queue_name(lines)):
        raise WorkFailed("verify --repair enqueued nothing")
    # The dashboard holds nothing of the receipt yet: its verify scans both tables, finds
    # the receipt's items missing and sends one repair to the dashboard's queue.
    dashboard = cli(d, creds, "verify", "--sink", DASHBOARD, "--repair", expect=1)
    if "missing" not in dashboard.stdout:
        raise WorkFailed(f"verify --sink dashboard found no drift:\n{dashboard.stdout}")
    if not receive_all(d, d.settings.sqs_queue_name(DASHBOARD)):
        raise WorkFailed("verify --sink dashboard --repair enqueued nothing")
    # Snapshots of the embedded collection: publish twice (CHROMASYNC_SNAPSHOT_KEEP=1, so
    # the first version is deleted), list, restore into an empty directory.
    cli(d, creds, "snapshot", "publish", "--collection", lines)
    second = cli(d, creds, "snapshot", "publish", "--collection", lines)
    listed = cli(d, creds, "snapshot", "list", "--collection", lines)
    if "  1 version(s); * latest:" not in listed.stdout:
        raise WorkFailed(
            f"snapshot list should show the one version kept:\n{listed.stdout}\n"
            f"second publish said:\n{second.stdout}\n{second.stderr}"
        )
    restored = tmp / "restored"
    cli(d, creds, "snapshot", "restore", "--collection", lines, "--dir", str(restored))
    if not any(restored.iterdir()):
        raise WorkFailed("nothing restored")


WORK: dict[str, Callable[[Deployment, dict[str, str], Path], None]] = {
    "producer-lambda": lambda_work,
    "poller": poller_work,
    "worker": worker_work,
    "operator": operator_work,
}


# -- the tests -------------------------------------------------------------------------------


@pytest.mark.parametrize("role", ROLES)
def test_each_role_does_its_work_with_exactly_its_policy(
    role: str, deployment: Deployment, tmp_path: Path
) -> None:
    creds = deployment.credentials(policy_file(role))
    WORK[role](deployment, creds, tmp_path)


@pytest.mark.parametrize(
    ("role", "sid", "action"),
    [(role, sid, action) for role in ROLES for sid, action in actions(role)],
    ids=lambda value: str(value),
)
def test_every_action_of_a_policy_is_needed(
    role: str, sid: str, action: str, deployment: Deployment, tmp_path: Path
) -> None:
    creds = deployment.credentials(without(policy_file(role), sid, action))
    with pytest.raises(Exception) as failed:  # noqa: PT011 - any failure, checked below
        WORK[role](deployment, creds, tmp_path)
    assert denied(str(failed.value)), (
        f"{role} without {sid}/{action} failed otherwise: {failed.value}"
    )


def _sqs_send(queue: Callable[[Deployment], str]) -> Callable[[Deployment, Any], Any]:
    def call(d: Deployment, clients: Any) -> Any:
        url = d.client("sqs", d.admin).get_queue_url(QueueName=queue(d))["QueueUrl"]
        return clients("sqs").send_message(QueueUrl=url, MessageBody="{}")

    return call


def _update_source(update: str, **extra: Any) -> Callable[[Deployment, Any], Any]:
    def call(d: Deployment, clients: Any) -> Any:
        return clients("dynamodb").update_item(
            TableName=d.table,
            Key={"PK": {"S": "IMAGE#x"}, "SK": {"S": "RECEIPT#00001#COMPACTION_RUN#r"}},
            UpdateExpression=update,
            ExpressionAttributeValues={":v": {"S": "x"}},
            **extra,
        )

    return call


def _create_queue(d: Deployment, clients: Any) -> Any:
    return clients("sqs").create_queue(QueueName=f"{d.settings.queue_prefix}new")


def _create_table(d: Deployment, clients: Any) -> Any:
    return clients("dynamodb").create_table(
        TableName=f"{d.table}-new",
        KeySchema=[{"AttributeName": "k", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "k", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )


def _write_source(d: Deployment, clients: Any) -> Any:
    item = {"PK": {"S": "IMAGE#x"}, "SK": {"S": "RECEIPT#00001"}}
    return clients("dynamodb").put_item(TableName=d.table, Item=item)


def _scan_dashboard(d: Deployment, clients: Any) -> Any:
    return clients("dynamodb").scan(TableName=d.dashboard_table)


def _query_dashboard(d: Deployment, clients: Any) -> Any:
    return clients("dynamodb").query(
        TableName=d.dashboard_table,
        KeyConditionExpression="PK = :pk",
        ExpressionAttributeValues={":pk": {"S": "MERCHANT#x"}},
    )


def _delete_dashboard(d: Deployment, clients: Any) -> Any:
    return clients("dynamodb").delete_table(TableName=d.dashboard_table)


def _write_dashboard(d: Deployment, clients: Any) -> Any:
    item = {"PK": {"S": "MERCHANT#x"}, "SK": {"S": "DAY#2026-01-01#RECEIPT#x#00001"}}
    return clients("dynamodb").put_item(TableName=d.dashboard_table, Item=item)


def _dlq(d: Deployment) -> str:
    return d.settings.dlq_name(d.settings.lines_collection)


def _quarantine(d: Deployment) -> str:
    return f"{d.settings.queue_prefix}{QUARANTINE_SUFFIX}"


def _lines(d: Deployment) -> str:
    return d.settings.sqs_queue_name(d.settings.lines_collection)


#: Calls each role must not be able to make: nothing is created, the source table is
#: not written (the worker: only the merge attributes, without reading the item back),
#: no role writes a queue that is not its own; the dashboard table is written by the
#: worker alone, which may neither scan it (it reads manifests by key, and a repair
#: Queries the ``by_receipt`` index), query the table itself, nor delete it.
FORBIDDEN: list[tuple[str, str, Callable[[Deployment, Any], Any]]] = [
    *[(role, "CreateQueue", _create_queue) for role in ROLES],
    *[(role, "CreateTable", _create_table) for role in ROLES],
    *[(role, "PutItem on the source table", _write_source) for role in ROLES],
    ("producer-lambda", "SendMessage to a dead-letter queue", _sqs_send(_dlq)),
    ("poller", "SendMessage to a dead-letter queue", _sqs_send(_dlq)),
    ("worker", "SendMessage to the quarantine", _sqs_send(_quarantine)),
    ("operator", "SendMessage to the quarantine", _sqs_send(_quarantine)),
    (
        "producer-lambda",
        "UpdateItem on the source table",
        _update_source("SET lines_merge_status = :v"),
    ),
    ("worker", "UpdateItem of another attribute", _update_source("SET merchant_name = :v")),
    ("worker", "Scan of the dashboard table", _scan_dashboard),
    ("worker", "Query of the dashboard table (not its index)", _query_dashboard),
    ("worker", "DeleteTable of the dashboard table", _delete_dashboard),
    ("producer-lambda", "PutItem on the dashboard table", _write_dashboard),
    ("poller", "PutItem on the dashboard table", _write_dashboard),
    (
        "worker",
        "UpdateItem of a merge attribute that reads the whole item back",
        _update_source("SET lines_merge_status = :v", ReturnValues="ALL_NEW"),
    ),
    (
        "operator",
        "PurgeQueue on a task queue",
        lambda d, c: c("sqs").purge_queue(
            QueueUrl=d.client("sqs", d.admin).get_queue_url(QueueName=_lines(d))["QueueUrl"]
        ),
    ),
]


@pytest.mark.parametrize(
    ("role", "what", "call"), FORBIDDEN, ids=[f"{role}: {what}" for role, what, _ in FORBIDDEN]
)
def test_what_a_role_may_not_do_is_refused(
    role: str, what: str, call: Callable[[Deployment, Any], Any], deployment: Deployment
) -> None:
    from botocore.exceptions import ClientError

    creds = deployment.credentials(policy_file(role))
    with pytest.raises(ClientError) as refused:
        call(deployment, lambda service: deployment.client(service, creds))
    assert denied(str(refused.value)), refused.value
    # The harness may do it: the refusal is the policy's, not a broken request.
    call(deployment, lambda service: deployment.client(service, deployment.admin))
