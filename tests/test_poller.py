"""``chromasync poll``: killed mid-backlog and restarted, it skips nothing; clear errors."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import boto3
import pytest

from chromasync.core.config import Settings
from chromasync.core.keys import image_pk, line_sk
from chromasync.local import free_port, wait_for
from chromasync.provision import SOURCE_TABLE_SCHEMA, provision
from producers.checkpoints.backends.dynamodb import CHECKPOINT_TABLE_SCHEMA
from tests.producing import IMAGE, Queues, stream_pages

#: Records in the backlog: many pages of ``--batch-size`` records.
BACKLOG = 1000
#: Records per GetRecords call, so the checkpoint moves many times.
PAGE = 25


def poll(env: dict[str, str], log: Path, *args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "chromasync.cli", "poll", *args],
        env=env,
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
    )


def stream_sequence_numbers(settings: Settings, stream_arn: str) -> list[int]:
    """Every record of the table's stream, read directly (not through our code)."""
    streams = boto3.client("dynamodbstreams", **settings.aws.client_kwargs())
    pages = stream_pages(streams, stream_arn)
    return [int(r["dynamodb"]["SequenceNumber"]) for page in pages for r in page]


def checkpoints(settings: Settings, table: str) -> list[int]:
    dynamodb = boto3.client("dynamodb", **settings.aws.client_kwargs())
    try:
        items = dynamodb.scan(TableName=table, ConsistentRead=True)["Items"]
    except dynamodb.exceptions.ResourceNotFoundException:
        return []
    return [int(i["sequence_number"]["S"]) for i in items if "sequence_number" in i]


@pytest.mark.slow
def test_a_killed_poller_restarts_without_skipping_a_record(
    producer_env: dict[str, str], tmp_path: Path
) -> None:
    env = {**producer_env, "CHROMASYNC_MAX_CHANGES_PER_TASK": "5"}
    settings = Settings.from_env(env)
    checkpoint_table = env["CHROMASYNC_CHECKPOINT_URL"].removeprefix("dynamodb://")
    made = provision(env, source_table=True, snapshot_bucket=False)
    stream_arn = next(m.detail for m in made if m.name == settings.table)
    queues = Queues(settings)
    table = boto3.resource("dynamodb", **settings.aws.client_kwargs()).Table(settings.table)
    written = {(1 + i // 500, 1 + i % 500) for i in range(BACKLOG)}
    with table.batch_writer() as batch:
        for receipt, line in sorted(written):
            item: dict[str, Any] = {"text": f"r{receipt} l{line}"}
            batch.put_item(Item={"PK": image_pk(IMAGE), "SK": line_sk(receipt, line), **item})
    last = max(stream_sequence_numbers(settings, stream_arn))
    log = tmp_path / "poll.log"

    first = poll(env, log, "--batch-size", str(PAGE))
    try:
        wait_for(lambda: checkpoints(settings, checkpoint_table), 60, what="a first checkpoint")
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait(10)
    (at_kill,) = checkpoints(settings, checkpoint_table)
    assert at_kill < last, "the poller finished before it was killed; grow the backlog"

    second = poll(env, log, "--batch-size", str(PAGE))
    try:
        wait_for(
            lambda: checkpoints(settings, checkpoint_table) == [last],
            60,
            interval=0.1,
            what=f"the checkpoint to reach the last record\n{log.read_text()[-2000:]}",
        )
    finally:
        second.terminate()
        assert second.wait(20) == 0
    delivered: list[tuple[int, int]] = []
    for task in queues.tasks(settings.lines_collection):
        for change in task.batch.changes:
            assert change.keys.line_id is not None
            delivered.append((change.keys.receipt_id, change.keys.line_id))
    # Every record at least once; the page in flight at the kill may come twice.
    assert set(delivered) == written
    assert len(delivered) - len(written) <= PAGE


def poll_once(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "chromasync.cli", "poll", "--once", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.slow
@pytest.mark.parametrize(
    ("variable", "value", "status", "said"),
    [
        pytest.param(
            "CHROMASYNC_CHECKPOINT_URL",
            "ftp://somewhere",
            2,
            ["CHROMASYNC_CHECKPOINT_URL='ftp://somewhere'"],
            id="a wrong setting",
        ),
        pytest.param(
            "AWS_ENDPOINT_URL",
            "http://127.0.0.1:{port}",
            3,
            ["unreachable", "127.0.0.1:{port}"],
            id="an unreachable endpoint",
        ),
    ],
)
def test_poll_says_what_stops_it(
    producer_env: dict[str, str], variable: str, value: str, status: int, said: list[str]
) -> None:
    port = free_port()
    result = poll_once({**producer_env, variable: value.format(port=port)})
    assert result.returncode == status, result.stderr
    for text in said:
        assert text.format(port=port) in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.slow
def test_poll_names_a_missing_resource_and_creates_nothing(
    producer_env: dict[str, str],
) -> None:
    missing = poll_once(producer_env, "--table", "no-such-table")
    assert missing.returncode == 3, missing.stderr
    assert "DynamoDB table 'no-such-table' does not exist" in missing.stderr
    assert "chromasync provision --table" in missing.stderr
    assert "Traceback" not in missing.stderr
    # The source table is there, nothing was provisioned: the poller creates nothing and
    # names the first thing missing (the checkpoint table), then the queues.
    settings = Settings.from_env(producer_env)
    boto3.client("dynamodb", **settings.aws.client_kwargs()).create_table(
        TableName=settings.table, **SOURCE_TABLE_SCHEMA
    )
    checkpoint_table = producer_env["CHROMASYNC_CHECKPOINT_URL"].removeprefix("dynamodb://")
    unprovisioned = poll_once(producer_env)
    assert unprovisioned.returncode == 3, unprovisioned.stderr
    assert f"DynamoDB table '{checkpoint_table}' does not exist" in unprovisioned.stderr
    assert "chromasync provision" in unprovisioned.stderr
    sqs = boto3.client("sqs", **settings.aws.client_kwargs())
    assert sqs.list_queues().get("QueueUrls", []) == []
    boto3.client("dynamodb", **settings.aws.client_kwargs()).create_table(
        TableName=checkpoint_table, **CHECKPOINT_TABLE_SCHEMA
    )
    boto3.resource("dynamodb", **settings.aws.client_kwargs()).Table(settings.table).put_item(
        Item={"PK": image_pk(IMAGE), "SK": line_sk(1, 1), "text": "x"}
    )
    no_queue = poll_once(producer_env)
    assert no_queue.returncode == 3, no_queue.stderr
    assert f"SQS queue '{settings.sqs_queue_name('lines')}' does not exist" in no_queue.stderr
    assert sqs.list_queues().get("QueueUrls", []) == []
    # Provisioned, the same command runs.
    provision(producer_env, snapshot_bucket=False)
    assert poll_once(producer_env).returncode == 0


def test_shards_are_looked_up_once_per_interval_not_every_round(
    producer_env: dict[str, str],
) -> None:
    """DescribeStream is rate-limited by AWS: rounds read the known shards only,
    until DISCOVER_INTERVAL has passed."""
    from producers import poller as poller_module
    from producers.checkpoints import checkpoint_store_from_env
    from producers.pipeline import StreamProcessor
    from producers.poller import StreamPoller
    from producers.publishing import Publisher

    settings = Settings.from_env(producer_env)
    provision(producer_env, source_table=True, snapshot_bucket=False)
    table = boto3.resource("dynamodb", **settings.aws.client_kwargs()).Table(settings.table)
    poller = StreamPoller(
        settings,
        StreamProcessor(settings, Publisher(settings)),
        checkpoint_store_from_env(producer_env, settings.aws),
    )
    handled = 0
    for line in range(1, 6):
        table.put_item(Item={"PK": image_pk(IMAGE), "SK": line_sk(1, line), "text": "x"})
        handled += poller.poll_once()
    assert handled == 5
    assert (poller.stats.rounds, poller.stats.discoveries) == (5, 1)
    poller._discover_at = 0.0  # the interval has passed
    poller.poll_once()
    assert poller.stats.discoveries == 2
    assert poller_module.DISCOVER_INTERVAL >= 1.0
