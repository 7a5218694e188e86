"""``chromasync provision`` is the only code that creates AWS resources, and it creates them all.

The IAM suite (tests/test_iam_policies.py) runs every role's work with
credentials that may not create anything; this file pins the rest: no create
call is written anywhere else in the shipped packages, and provisioning makes
every resource the settings name, idempotently.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import boto3
import pytest

from chromasync.core.config import Settings

ROOT = Path(__file__).resolve().parents[1]
#: The shipped packages, and the one module of them allowed to create resources.
PACKAGES = ("producers", "tasks", "chromasync")
PROVISIONING = ROOT / "chromasync" / "provision.py"
#: boto3 calls that create a resource.
CREATE_CALLS = frozenset({"create_queue", "create_table", "create_bucket"})


def create_calls(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    return [
        f"{path.relative_to(ROOT)}:{node.lineno} {node.func.attr}"
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr in CREATE_CALLS
    ]


def test_no_create_call_outside_provisioning() -> None:
    found = [
        call
        for package in PACKAGES
        for path in sorted((ROOT / package).rglob("*.py"))
        if path != PROVISIONING
        for call in create_calls(path)
    ]
    assert found == []
    # The check sees calls at all: provisioning has them.
    assert {c.rsplit(" ", 1)[1] for c in create_calls(PROVISIONING)} == set(CREATE_CALLS)


def provision(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "chromasync.cli", "provision", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.slow
def test_provision_creates_everything_the_settings_name_and_runs_again(
    producer_env: dict[str, str],
) -> None:
    env = {
        **producer_env,
        "CHROMASYNC_LOCK_URL": f"dynamodb://{producer_env['CHROMASYNC_TABLE']}-locks",
        "CHROMASYNC_SNAPSHOT_BUCKET": f"snap-{producer_env['CHROMASYNC_TABLE']}",
    }
    settings = Settings.from_env(env)
    checkpoints = env["CHROMASYNC_CHECKPOINT_URL"].removeprefix("dynamodb://")
    first = provision(env, "--table")
    assert first.returncode == 0, first.stderr
    again = provision(env, "--table")
    assert again.returncode == 0, again.stderr
    assert first.stdout.splitlines() == again.stdout.splitlines()

    kwargs = settings.aws.client_kwargs()
    queues = {
        url.rsplit("/", 1)[1] for url in boto3.client("sqs", **kwargs).list_queues()["QueueUrls"]
    }
    prefix = settings.queue_prefix
    assert queues == {
        f"{prefix}lines",
        f"{prefix}words",
        f"{prefix}lines-dlq",
        f"{prefix}words-dlq",
        f"{prefix}stream-rejects",
    }
    tables = set(boto3.client("dynamodb", **kwargs).list_tables()["TableNames"])
    assert tables == {settings.table, checkpoints, f"{settings.table}-locks"}
    buckets = {b["Name"] for b in boto3.client("s3", **kwargs).list_buckets()["Buckets"]}
    assert buckets == {env["CHROMASYNC_SNAPSHOT_BUCKET"]}
    for name in (*queues, *tables, env["CHROMASYNC_SNAPSHOT_BUCKET"]):
        assert name in first.stdout


@pytest.mark.slow
def test_redis_stores_and_no_bucket_provision_no_tables_and_no_bucket(
    producer_env: dict[str, str],
) -> None:
    env = {
        **producer_env,
        "CHROMASYNC_LOCK_URL": "redis://127.0.0.1:6379/15",
        "CHROMASYNC_CHECKPOINT_URL": "redis://127.0.0.1:6379/15",
    }
    done = provision(env, "--no-snapshot-bucket")
    assert done.returncode == 0, done.stderr
    kwargs = Settings.from_env(env).aws.client_kwargs()
    assert boto3.client("dynamodb", **kwargs).list_tables()["TableNames"] == []
    assert boto3.client("s3", **kwargs).list_buckets()["Buckets"] == []
    assert len(boto3.client("sqs", **kwargs).list_queues()["QueueUrls"]) == 5
