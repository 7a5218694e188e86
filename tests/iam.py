"""A deployment under IAM enforcement: moto (server mode) with deploy/iam's policies as users.

The policies in ``deploy/iam/*.json`` carry CloudFormation placeholders
(``${TableName}``, ``${AWS::Region}``...); :meth:`Deployment.policy` fills
them with this deployment's names, exactly as ``!Sub`` does in
``deploy/cloudformation.yaml``. :meth:`Deployment.credentials` creates one
IAM user holding exactly one such policy (inline) and returns its keys, so
code run with them can do what the policy grants and nothing else.
The test harness itself acts as an admin user (``"Action": "*"``).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3

from chromasync.core.config import Settings
from chromasync.local import MotoServer
from chromasync.provision import provision
from tests.servers import redis_url

#: Where the policies live.
POLICY_DIR = Path(__file__).resolve().parents[1] / "deploy" / "iam"
#: The roles, one policy file each.
ROLES = ("producer-lambda", "poller", "worker", "operator")
#: moto's account and partition, what ``${AWS::AccountId}``/``${AWS::Partition}`` become.
ACCOUNT = "123456789012"
PARTITION = "aws"
REGION = "us-east-1"
#: An Allow of everything, for the harness's own user.
ADMIN_POLICY = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}],
}


def policy_file(role: str) -> dict[str, Any]:
    document: dict[str, Any] = json.loads((POLICY_DIR / f"{role}.json").read_text())
    return document


def actions(role: str) -> Iterator[tuple[str, str]]:
    """(statement Sid, action) of every action a role's policy grants."""
    for statement in policy_file(role)["Statement"]:
        granted = statement["Action"]
        for action in [granted] if isinstance(granted, str) else granted:
            yield statement["Sid"], action


def without(document: dict[str, Any], sid: str, action: str) -> dict[str, Any]:
    """The policy with one action taken out of one statement (the statement dropped if empty)."""
    statements = []
    for statement in document["Statement"]:
        if statement["Sid"] == sid:
            granted = statement["Action"]
            left = [a for a in ([granted] if isinstance(granted, str) else granted) if a != action]
            assert len(left) < len([granted] if isinstance(granted, str) else granted), action
            if not left:
                continue
            statement = {**statement, "Action": left}
        statements.append(statement)
    return {**document, "Statement": statements}


def admin_keys(server: MotoServer) -> dict[str, str]:
    """Create the harness's admin user (before enforcement is on) and return its keys."""
    return create_user_keys(server.url, {}, "chromasync-test-admin", ADMIN_POLICY)


def create_user_keys(
    endpoint: str, creator: dict[str, str], name: str, document: dict[str, Any]
) -> dict[str, str]:
    """An IAM user holding exactly ``document`` (inline), made with ``creator``'s keys (moto's
    default ones while enforcement is off); its keys as environment variables."""
    iam = boto3.client(
        "iam",
        endpoint_url=endpoint,
        region_name=REGION,
        aws_access_key_id=creator.get("AWS_ACCESS_KEY_ID", "testing"),
        aws_secret_access_key=creator.get("AWS_SECRET_ACCESS_KEY", "testing"),
    )
    iam.create_user(UserName=name)
    iam.put_user_policy(UserName=name, PolicyName=name, PolicyDocument=json.dumps(document))
    key = iam.create_access_key(UserName=name)["AccessKey"]
    iam.close()
    return {
        "AWS_ACCESS_KEY_ID": key["AccessKeyId"],
        "AWS_SECRET_ACCESS_KEY": key["SecretAccessKey"],
    }


@dataclass
class Deployment:
    """One provisioned system with unique names on an enforcing moto server."""

    server: MotoServer
    admin: dict[str, str]
    tmp: Path
    suffix: str = field(default_factory=lambda: uuid.uuid4().hex[:8])

    def __post_init__(self) -> None:
        s = self.suffix
        #: The environment every role shares: names and endpoints, no credentials.
        self.env: dict[str, str] = {
            "AWS_ENDPOINT_URL": self.server.url,
            "AWS_DEFAULT_REGION": REGION,
            "CHROMASYNC_TABLE": f"receipts-{s}",
            "CHROMASYNC_QUEUE_PREFIX": f"iam{s}-",
            "CHROMASYNC_CHECKPOINT_URL": f"dynamodb://checkpoints-{s}",
            "CHROMASYNC_LOCK_URL": f"dynamodb://locks-{s}",
            "CHROMASYNC_SINKS": "chroma,dashboard",
            "CHROMASYNC_DASHBOARD_TABLE": f"dashboard-{s}",
            "CHROMASYNC_SNAPSHOT_BUCKET": f"snapshots-{s}",
            "CHROMASYNC_DELTA_BUCKET": f"deltas-{s}",
            "CHROMASYNC_CHROMA_DIR": str(self.tmp / "chroma"),
            "CHROMASYNC_METRICS_URL": redis_url(),
            "CHROMASYNC_EVENTS_URL": redis_url(),
            "CHROMASYNC_WAIT_TIME_SECONDS": "1",
            "CHROMASYNC_RETRY_BACKOFF_BASE": "0.2",
            "CHROMASYNC_RETRY_BACKOFF_MAX": "1",
            "CHROMASYNC_SNAPSHOT_KEEP": "1",
            "ANONYMIZED_TELEMETRY": "False",
        }
        self.settings = Settings.from_env({**self.env, **self.admin})
        provision({**self.env, **self.admin}, source_table=True)
        self.s3(self.admin).create_bucket(Bucket=self.env["CHROMASYNC_DELTA_BUCKET"])

    # -- names ------------------------------------------------------------------------------

    @property
    def table(self) -> str:
        return self.env["CHROMASYNC_TABLE"]

    @property
    def lock_table(self) -> str:
        return self.env["CHROMASYNC_LOCK_URL"].removeprefix("dynamodb://")

    @property
    def dashboard_table(self) -> str:
        return self.env["CHROMASYNC_DASHBOARD_TABLE"]

    @property
    def checkpoint_table(self) -> str:
        return self.env["CHROMASYNC_CHECKPOINT_URL"].removeprefix("dynamodb://")

    def placeholders(self) -> dict[str, str]:
        """What each ``${...}`` of the policy files stands for here."""
        return {
            "AWS::Partition": PARTITION,
            "AWS::Region": REGION,
            "AWS::AccountId": ACCOUNT,
            "TableName": self.table,
            "QueuePrefix": self.settings.queue_prefix,
            "LinesCollection": self.settings.lines_collection,
            "WordsCollection": self.settings.words_collection,
            "CheckpointTable": self.checkpoint_table,
            "LockTable": self.lock_table,
            "DashboardTable": self.dashboard_table,
            "SnapshotBucket": self.env["CHROMASYNC_SNAPSHOT_BUCKET"],
            "DeltaBucket": self.env["CHROMASYNC_DELTA_BUCKET"],
        }

    def policy(self, document: dict[str, Any]) -> dict[str, Any]:
        """A policy file's document with its placeholders filled in, as ``!Sub`` would."""
        text = json.dumps(document)
        for name, value in self.placeholders().items():
            text = text.replace("${" + name + "}", value)
        assert "${" not in text, f"unknown placeholder in {text}"
        filled: dict[str, Any] = json.loads(text)
        return filled

    # -- credentials and clients ------------------------------------------------------------

    def credentials(self, document: dict[str, Any]) -> dict[str, str]:
        """Keys of a new IAM user holding exactly ``document`` (placeholders filled here)."""
        name = f"role-{uuid.uuid4().hex[:12]}"
        return create_user_keys(self.server.url, self.admin, name, self.policy(document))

    def role_env(self, credentials: dict[str, str]) -> dict[str, str]:
        """The environment of a process running as a role (nothing of the harness's)."""
        import os

        base = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "CHROMASYNC_"))}
        base.pop("CELERY_BROKER_URL", None)
        return {**base, **self.env, **credentials}

    def client(self, service: str, credentials: dict[str, str]) -> Any:
        return boto3.client(
            service,
            endpoint_url=self.server.url,
            region_name=REGION,
            aws_access_key_id=credentials["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=credentials["AWS_SECRET_ACCESS_KEY"],
        )

    def s3(self, credentials: dict[str, str]) -> Any:
        return self.client("s3", credentials)
