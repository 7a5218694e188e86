"""deploy/cloudformation.yaml deployed to moto's CloudFormation, and the pipeline run on it.

A moto server of this module's own (our wrapper, ``python -m chromasync.motoserver``)
creates the stack from the template as it is, with parameters that are not the
defaults (so each one is seen to arrive). The tests read every resource back
with the attributes the template declares, then configure producer and workers
from the stack's outputs and the function's environment alone, and run a
merchant edit through the Lambda handler and two ``celery`` workers into Chroma.

moto falls short in six places; each is named where it shows, with an
assertion on what moto does, and done by hand or read around after it:

* its ``AWS::IAM::Role`` ignores ``ManagedPolicyArns`` (the producer role's
  AWSLambdaBasicExecutionRole): attached by hand;
* it keeps a role's inline policy, which CloudFormation hands it as a mapping, as
  that mapping's Python repr, not JSON: read back with :func:`ast.literal_eval`;
* its ``AWS::S3::Bucket`` ignores ``PublicAccessBlockConfiguration``: put by hand;
* its ``AWS::DynamoDB::Table`` ignores ``TimeToLiveSpecification``: turned on by hand;
* it cannot run a Lambda without a docker engine, yet hands every new record of a
  mapped stream to the function itself, and then drops it from the stream (or,
  without the docker package, fails the write): the pipeline runs on the source
  table made again by hand (``chromasync.provision.ensure_table``), with the
  handler called in-process on the stream's records as Lambda would pass them;
* a queue's ``Ref`` (the URL outputs) is built with AWS's host, not the server's:
  the outputs are compared by path.

(It also keeps a Number parameter's value as a number in the function's
environment; Lambda's are strings, so they are compared as strings.)
"""

from __future__ import annotations

import ast
import base64
import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from chromasync.core.config import Settings
from chromasync.core.entities import REGISTRY
from chromasync.core.keys import image_pk, receipt_sk
from chromasync.local import MotoServer, wait_for
from chromasync.provision import MAX_MESSAGE_BYTES, MAX_RECEIVE_COUNT, ensure_table
from chromasync.seed import ReceiptSpec, demo_receipts, merchant_fields, seed_chroma, seed_table
from chromasync.workers import WorkerProcess
from producers import defaults, lambda_handler
from producers.quarantine import QUARANTINE_RETENTION_SECONDS
from tasks.chroma.factory import chroma_target_from_settings
from tasks.config import WorkerSettings
from tasks.deadletter import DLQ_RETENTION_SECONDS
from tasks.sinks.dashboard.table import TABLE_SCHEMA as DASHBOARD_TABLE_SCHEMA
from tasks.sinks.dashboard.table import TTL_ATTRIBUTE
from tests.cloudformation import (
    TEMPLATE,
    load_template,
    policy_file,
    producer_zip,
    substitute,
)
from tests.producing import stream_pages
from tests.servers import redis_url

pytestmark = pytest.mark.slow

STACK = "chromasync-test"
REGION = "us-east-1"
#: moto's account.
ACCOUNT = "123456789012"
CODE_BUCKET = "chromasync-code"
CODE_KEY = "chromasync-producer-test.zip"
#: The stack's parameters, each away from its default but for the three that decide
#: conditions (SourceStreamArn, ComputeServicePrincipal, Sinks): a second stack takes
#: their other side (test_an_existing_tables_stream_and_roles_for_ec2).
PARAMETERS = {
    "TableName": "cfn-receipts",
    "StartingPosition": "LATEST",
    "QueuePrefix": "cfn-",
    "LinesCollection": "cfnlines",
    "WordsCollection": "cfnwords",
    "VisibilityTimeout": "120",
    "CheckpointTable": "cfn-checkpoints",
    "LockTable": "cfn-locks",
    "DashboardTable": "cfn-dashboard",
    "SnapshotBucket": "cfn-snapshots",
    "DeltaBucket": "cfn-deltas",
    "CodeBucket": CODE_BUCKET,
    "CodeKey": CODE_KEY,
    "MaxChangesPerTask": "200",
    "MaximumRetryAttempts": "100",
    "MaximumRecordAgeInSeconds": "3600",
}
#: What ``${...}`` in deploy/iam resolves to in this stack.
PLACEHOLDER_VALUES = {
    **PARAMETERS,
    "AWS::Partition": "aws",
    "AWS::Region": REGION,
    "AWS::AccountId": ACCOUNT,
}
BASIC_EXECUTION_ROLE = "arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole"


@dataclass
class Deployment:
    """The stack on its moto server: outputs, and clients for reading it back."""

    server: MotoServer
    code: bytes
    outputs: dict[str, str] = field(default_factory=dict)
    #: describe_table of the source table right after creation (the pipeline replaces it).
    source_table: dict[str, Any] = field(default_factory=dict)

    def client(self, service: str, **config: Any) -> Any:
        env = self.server.client_env()
        return boto3.client(
            service,
            endpoint_url=env["AWS_ENDPOINT_URL"],
            region_name=REGION,
            aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
            config=Config(**config) if config else None,
        )

    def function(self) -> dict[str, Any]:
        configuration: dict[str, Any] = self.client("lambda").get_function(
            FunctionName=self.outputs["ProducerFunctionName"]
        )["Configuration"]
        return configuration


#: Makes moto load AWS's managed policies (AWSLambdaBasicExecutionRole...), as AWS has them.
LOAD_MANAGED_POLICIES = "MOTO_IAM_LOAD_MANAGED_POLICIES"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoServer]:
    """This module's own moto server, with AWS's managed policies."""
    with pytest.MonkeyPatch.context() as patch:
        # moto's /moto-api/config cannot turn them on; its environment can.
        patch.setenv(LOAD_MANAGED_POLICIES, "true")
        moto = MotoServer.start(log=tmp_path_factory.mktemp("moto-cfn") / "moto.log")
    try:
        yield moto
    finally:
        moto.stop()


def create_stack(d: Deployment, name: str, parameters: dict[str, str]) -> dict[str, str]:
    """Create a stack of the template, wait until it is complete; return its outputs."""
    cloudformation = d.client("cloudformation")
    cloudformation.create_stack(
        StackName=name,
        TemplateBody=TEMPLATE.read_text(),
        Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in parameters.items()],
        Capabilities=["CAPABILITY_IAM"],
    )
    cloudformation.get_waiter("stack_create_complete").wait(
        StackName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 60}
    )
    (stack,) = cloudformation.describe_stacks(StackName=name)["Stacks"]
    return {o["OutputKey"]: o["OutputValue"] for o in stack["Outputs"]}


@pytest.fixture(scope="module")
def deployment(server: MotoServer) -> Deployment:
    d = Deployment(server, producer_zip())
    s3 = d.client("s3")
    s3.create_bucket(Bucket=CODE_BUCKET)
    s3.put_object(Bucket=CODE_BUCKET, Key=CODE_KEY, Body=d.code)
    d.outputs = create_stack(d, STACK, PARAMETERS)
    d.source_table = d.client("dynamodb").describe_table(TableName=PARAMETERS["TableName"])["Table"]
    return d


def queue_name(suffix: str) -> str:
    return f"{PARAMETERS['QueuePrefix']}{suffix}"


# --- what the stack made ----------------------------------------------------


def test_the_stack_is_created_by_moto_behind_our_wrapper(deployment: Deployment) -> None:
    # The server is our wrapper: CloudFormation's requests went through it like all others.
    command = deployment.server.process.args
    assert isinstance(command, list) and "chromasync.motoserver" in command
    template = load_template()
    declared = {
        name
        for name, resource in template["Resources"].items()
        # On ECS tasks (the default principal) there is no instance profile.
        if resource.get("Condition") != "OnEc2"
    }
    summaries = deployment.client("cloudformation").list_stack_resources(StackName=STACK)[
        "StackResourceSummaries"
    ]
    # moto lists a resource whose condition is false as an entry with no logical id.
    created = {s["LogicalResourceId"]: s for s in summaries if s.get("LogicalResourceId")}
    assert set(created) == declared
    assert {s["ResourceStatus"] for s in created.values()} == {"CREATE_COMPLETE"}
    expected_outputs = {
        name for name, output in template["Outputs"].items() if output.get("Condition") != "OnEc2"
    }
    assert set(deployment.outputs) == expected_outputs


def test_queues_have_the_declared_attributes(deployment: Deployment) -> None:
    sqs = deployment.client("sqs")

    def attributes(output: str, name: str) -> dict[str, str]:
        url = sqs.get_queue_url(QueueName=name)["QueueUrl"]
        # moto builds a queue's Ref with AWS's host; the path is the queue's.
        assert deployment.outputs[output].endswith(f"/{ACCOUNT}/{name}")
        found: dict[str, str] = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])[
            "Attributes"
        ]
        assert "FifoQueue" not in found  # standard queues
        return found

    for output, collection in (
        ("Lines", "cfnlines"),
        ("Words", "cfnwords"),
        ("Dashboard", "dashboard"),
    ):
        dlq = attributes(f"{output}DeadLetterQueueUrl", queue_name(f"{collection}-dlq"))
        assert dlq["MessageRetentionPeriod"] == str(DLQ_RETENTION_SECONDS)
        queue = attributes(f"{output}QueueUrl", queue_name(collection))
        assert queue["VisibilityTimeout"] == PARAMETERS["VisibilityTimeout"]
        assert queue["MaximumMessageSize"] == str(MAX_MESSAGE_BYTES)
        assert json.loads(queue["RedrivePolicy"]) == {
            "deadLetterTargetArn": dlq["QueueArn"],
            "maxReceiveCount": MAX_RECEIVE_COUNT,
        }
    quarantine = attributes("QuarantineQueueUrl", queue_name("stream-rejects"))
    assert quarantine["MessageRetentionPeriod"] == str(QUARANTINE_RETENTION_SECONDS)


def key_schema(table: dict[str, Any]) -> tuple[Any, Any, str]:
    return (
        table["KeySchema"],
        sorted(table["AttributeDefinitions"], key=lambda a: a["AttributeName"]),
        table["BillingModeSummary"]["BillingMode"],
    )


def test_tables_have_the_declared_schemas_and_stream(deployment: Deployment) -> None:
    source = deployment.source_table
    assert key_schema(source) == (
        [{"AttributeName": "PK", "KeyType": "HASH"}, {"AttributeName": "SK", "KeyType": "RANGE"}],
        [
            {"AttributeName": "PK", "AttributeType": "S"},
            {"AttributeName": "SK", "AttributeType": "S"},
        ],
        "PAY_PER_REQUEST",
    )
    assert source["StreamSpecification"] == {
        "StreamEnabled": True,
        "StreamViewType": "NEW_AND_OLD_IMAGES",
    }
    assert deployment.outputs["SourceStreamArn"] == source["LatestStreamArn"]
    assert deployment.outputs["SourceTableName"] == PARAMETERS["TableName"]
    dynamodb = deployment.client("dynamodb")
    for output, key in (("CheckpointTableName", "shard"), ("LockTableName", "lock_name")):
        name = deployment.outputs[output]
        table = dynamodb.describe_table(TableName=name)["Table"]
        assert key_schema(table) == (
            [{"AttributeName": key, "KeyType": "HASH"}],
            [{"AttributeName": key, "AttributeType": "S"}],
            "PAY_PER_REQUEST",
        )
        assert "StreamSpecification" not in table
    assert deployment.outputs["CheckpointTableName"] == PARAMETERS["CheckpointTable"]
    assert deployment.outputs["LockTableName"] == PARAMETERS["LockTable"]


def test_dashboard_table_has_its_schema_and_ttl(deployment: Deployment) -> None:
    dynamodb = deployment.client("dynamodb")
    name = deployment.outputs["DashboardTableName"]
    assert name == PARAMETERS["DashboardTable"]
    table = dynamodb.describe_table(TableName=name)["Table"]
    assert key_schema(table) == (
        DASHBOARD_TABLE_SCHEMA["KeySchema"],
        sorted(DASHBOARD_TABLE_SCHEMA["AttributeDefinitions"], key=lambda a: a["AttributeName"]),
        DASHBOARD_TABLE_SCHEMA["BillingMode"],
    )
    # The index a repair Queries (the worker's policy grants Query on it alone).
    assert [
        {k: index[k] for k in ("IndexName", "KeySchema", "Projection")}
        for index in table["GlobalSecondaryIndexes"]
    ] == DASHBOARD_TABLE_SCHEMA["GlobalSecondaryIndexes"]
    assert "StreamSpecification" not in table
    ttl = dynamodb.describe_time_to_live(TableName=name)["TimeToLiveDescription"]
    if ttl["TimeToLiveStatus"] == "DISABLED":
        # moto's AWS::DynamoDB::Table ignores TimeToLiveSpecification: turned on by hand.
        dynamodb.update_time_to_live(
            TableName=name,
            TimeToLiveSpecification={"AttributeName": TTL_ATTRIBUTE, "Enabled": True},
        )
        ttl = dynamodb.describe_time_to_live(TableName=name)["TimeToLiveDescription"]
    assert ttl == {"TimeToLiveStatus": "ENABLED", "AttributeName": TTL_ATTRIBUTE}


def test_snapshot_bucket_is_private_and_encrypted(deployment: Deployment) -> None:
    s3 = deployment.client("s3")
    bucket = deployment.outputs["SnapshotBucketName"]
    assert bucket == PARAMETERS["SnapshotBucket"]
    rules = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]["Rules"]
    assert rules[0]["ApplyServerSideEncryptionByDefault"] == {"SSEAlgorithm": "AES256"}
    block = {
        "BlockPublicAcls": True,
        "IgnorePublicAcls": True,
        "BlockPublicPolicy": True,
        "RestrictPublicBuckets": True,
    }
    try:
        found = s3.get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"]
    except ClientError as exc:
        # moto's AWS::S3::Bucket ignores PublicAccessBlockConfiguration: put by hand.
        assert exc.response["Error"]["Code"] == "NoSuchPublicAccessBlockConfiguration"
        s3.put_public_access_block(Bucket=bucket, PublicAccessBlockConfiguration=block)
        found = s3.get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"]
    assert found == block
    assert deployment.outputs["DeltaBucketName"] == PARAMETERS["DeltaBucket"]


def test_the_function_runs_the_handler_from_the_uploaded_zip(deployment: Deployment) -> None:
    function = deployment.function()
    assert function["FunctionName"] == deployment.outputs["ProducerFunctionName"]
    assert (function["Runtime"], function["Handler"], function["Architectures"]) == (
        "python3.11",
        "producers.lambda_handler.handler",
        ["x86_64"],
    )
    assert function["CodeSize"] == len(deployment.code)
    assert function["CodeSha256"] == base64.b64encode(
        hashlib.sha256(deployment.code).digest()
    ).decode("ascii")
    assert function["Role"] == deployment.outputs["ProducerRoleArn"]
    # moto keeps a Number parameter's value as a number; Lambda's are strings.
    variables = {k: str(v) for k, v in function["Environment"]["Variables"].items()}
    assert variables == {
        "CHROMASYNC_TABLE": "cfn-receipts",
        "CHROMASYNC_QUEUE_PREFIX": "cfn-",
        "CHROMASYNC_COLLECTIONS": "cfnlines,cfnwords",
        "CHROMASYNC_SINKS": "chroma,dashboard",
        "CHROMASYNC_FIFO": "false",
        "CHROMASYNC_MAX_CHANGES_PER_TASK": "200",
    }


def test_the_event_source_mapping_has_the_declared_settings(deployment: Deployment) -> None:
    function = deployment.function()
    (mapping,) = deployment.client("lambda").list_event_source_mappings(
        FunctionName=function["FunctionName"]
    )["EventSourceMappings"]
    assert mapping["UUID"] == deployment.outputs["ProducerEventSourceMappingId"]
    quarantine_arn = f"arn:aws:sqs:{REGION}:{ACCOUNT}:{queue_name('stream-rejects')}"
    reported = {k: mapping.get(k) for k in SETTINGS_MOTO_REPORTS}
    assert reported == {
        "EventSourceArn": deployment.outputs["SourceStreamArn"],
        "FunctionArn": function["FunctionArn"],
        "State": "Enabled",
        "StartingPosition": "LATEST",
        "BatchSize": 1000,
        "MaximumBatchingWindowInSeconds": 1,
        "ParallelizationFactor": 1,
        "FunctionResponseTypes": ["ReportBatchItemFailures"],
        "BisectBatchOnFunctionError": False,
        "MaximumRetryAttempts": 100,
        "MaximumRecordAgeInSeconds": 3600,
        "DestinationConfig": {"OnFailure": {"Destination": quarantine_arn}},
    }


#: The mapping's settings read back (moto reports each as given).
SETTINGS_MOTO_REPORTS = (
    "EventSourceArn",
    "FunctionArn",
    "State",
    "StartingPosition",
    "BatchSize",
    "MaximumBatchingWindowInSeconds",
    "ParallelizationFactor",
    "FunctionResponseTypes",
    "BisectBatchOnFunctionError",
    "MaximumRetryAttempts",
    "MaximumRecordAgeInSeconds",
    "DestinationConfig",
)


@pytest.mark.parametrize(
    ("output", "policy", "principal"),
    [
        ("ProducerRoleArn", "producer-lambda", "lambda.amazonaws.com"),
        ("PollerRoleArn", "poller", "ecs-tasks.amazonaws.com"),
        ("WorkerRoleArn", "worker", "ecs-tasks.amazonaws.com"),
    ],
)
def test_roles_carry_the_policies_of_deploy_iam(
    deployment: Deployment, output: str, policy: str, principal: str
) -> None:
    iam = deployment.client("iam")
    name = deployment.outputs[output].rsplit("/", 1)[1]
    role = iam.get_role(RoleName=name)["Role"]
    assert role["AssumeRolePolicyDocument"]["Statement"] == [
        {"Effect": "Allow", "Principal": {"Service": principal}, "Action": "sts:AssumeRole"}
    ]
    assert iam.list_role_policies(RoleName=name)["PolicyNames"] == [policy]
    document = iam.get_role_policy(RoleName=name, PolicyName=policy)["PolicyDocument"]
    if isinstance(document, str):
        # moto keeps an inline policy that CloudFormation hands it as a mapping in
        # Python's repr (AWS keeps JSON); read it back as such.
        document = ast.literal_eval(document)
    assert document == substitute(policy_file(policy), PLACEHOLDER_VALUES)
    attached = iam.list_attached_role_policies(RoleName=name)["AttachedPolicies"]
    if policy == "producer-lambda":
        # moto's AWS::IAM::Role drops ManagedPolicyArns: attached by hand.
        assert attached == []
        iam.attach_role_policy(RoleName=name, PolicyArn=BASIC_EXECUTION_ROLE)
        attached = iam.list_attached_role_policies(RoleName=name)["AttachedPolicies"]
        assert [a["PolicyArn"] for a in attached] == [BASIC_EXECUTION_ROLE]
    else:
        assert attached == []


def test_operator_policy_is_deploy_iam_operator(deployment: Deployment) -> None:
    iam = deployment.client("iam")
    arn = deployment.outputs["OperatorPolicyArn"]
    policy = iam.get_policy(PolicyArn=arn)["Policy"]
    version = iam.get_policy_version(PolicyArn=arn, VersionId=policy["DefaultVersionId"])
    document = version["PolicyVersion"]["Document"]
    assert document == substitute(policy_file("operator"), PLACEHOLDER_VALUES)


def test_an_existing_tables_stream_and_roles_for_ec2(deployment: Deployment) -> None:
    """The other side of the conditions: a table made before (no table in the stack,
    the mapping on the given stream), EC2 instances (an instance profile per role) and
    Chroma alone (no dashboard table, queues or outputs; CHROMASYNC_SINKS=chroma)."""
    existing = "existing-receipts"
    dynamodb = deployment.client("dynamodb")
    stream_arn = ensure_table(Settings.from_env({"CHROMASYNC_TABLE": existing}), dynamodb)
    parameters = {
        **PARAMETERS,
        "TableName": existing,
        "SourceStreamArn": stream_arn,
        "ComputeServicePrincipal": "ec2.amazonaws.com",
        "QueuePrefix": "existing-",
        "CheckpointTable": "existing-checkpoints",
        "LockTable": "existing-locks",
        "DashboardTable": "existing-dashboard",
        "SnapshotBucket": "existing-snapshots",
        "Sinks": "chroma",
    }
    outputs = create_stack(deployment, "chromasync-existing", parameters)
    assert (outputs["SourceTableName"], outputs["SourceStreamArn"]) == (existing, stream_arn)
    resources = deployment.client("cloudformation").list_stack_resources(
        StackName="chromasync-existing"
    )["StackResourceSummaries"]
    types = {
        s["LogicalResourceId"]: s["ResourceType"] for s in resources if s.get("LogicalResourceId")
    }
    assert "SourceTable" not in types
    dashboard = {"DashboardTableResource", "DashboardQueue", "DashboardDeadLetterQueue"}
    assert not dashboard & set(types)
    assert not {name for name in outputs if name.startswith("Dashboard")}
    environment = environment_output(outputs["Environment"])
    assert environment["CHROMASYNC_SINKS"] == "chroma"
    assert "CHROMASYNC_DASHBOARD_TABLE" not in environment
    assert (
        not deployment.client("sqs")
        .list_queues(QueueNamePrefix="existing-dashboard")
        .get("QueueUrls")
    )
    assert "existing-dashboard" not in deployment.client("dynamodb").list_tables()["TableNames"]
    profiles = {types["PollerInstanceProfile"], types["WorkerInstanceProfile"]}
    assert profiles == {"AWS::IAM::InstanceProfile"}
    function = outputs["ProducerFunctionName"]
    (mapping,) = deployment.client("lambda").list_event_source_mappings(FunctionName=function)[
        "EventSourceMappings"
    ]
    assert mapping["EventSourceArn"] == stream_arn
    variables = deployment.client("lambda").get_function(FunctionName=function)["Configuration"][
        "Environment"
    ]["Variables"]
    assert variables["CHROMASYNC_SINKS"] == "chroma"
    iam = deployment.client("iam")
    for role in ("Poller", "Worker"):
        profile_name = outputs[f"{role}InstanceProfileArn"].rsplit("/", 1)[1]
        profile = iam.get_instance_profile(InstanceProfileName=profile_name)["InstanceProfile"]
        (member,) = profile["Roles"]
        assert member["Arn"] == outputs[f"{role}RoleArn"]
        assert member["AssumeRolePolicyDocument"]["Statement"][0]["Principal"] == {
            "Service": "ec2.amazonaws.com"
        }


# --- the pipeline on what the stack made -------------------------------------


def environment_output(value: str) -> dict[str, str]:
    """The ``Environment`` output: ``NAME=value`` pairs separated by spaces."""
    return dict(pair.split("=", 1) for pair in value.split())


def worker_env(deployment: Deployment, chroma_dir: Path) -> dict[str, str]:
    """A worker's environment: the stack's ``Environment`` output, moto, and local Chroma."""
    inherited = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("CHROMASYNC_", "AWS_", "ENABLE_")) and k != "CELERY_BROKER_URL"
    }
    return {
        **inherited,
        **deployment.server.client_env(),
        **environment_output(deployment.outputs["Environment"]),
        "CHROMASYNC_CHROMA_DIR": str(chroma_dir),
        "CHROMASYNC_METRICS_URL": "off",
        "CHROMASYNC_EVENTS_URL": redis_url(),
        "CHROMASYNC_WAIT_TIME_SECONDS": "1",
        "ANONYMIZED_TELEMETRY": "False",
    }


def stream_records(deployment: Deployment, stream_arn: str) -> list[list[dict[str, Any]]]:
    """Every record of the stream, page by page, as GetRecords returns them."""
    return stream_pages(deployment.client("dynamodbstreams"), stream_arn)


def _epoch(value: Any) -> float:
    if isinstance(value, datetime):
        return value.timestamp()
    raise TypeError(type(value).__name__)


def lambda_event(records: list[dict[str, Any]], stream_arn: str) -> dict[str, Any]:
    """GetRecords' records as the event Lambda passes: with the stream's ARN, and
    ``ApproximateCreationDateTime`` in epoch seconds where boto3 parsed a datetime."""
    event = {"Records": [{**record, "eventSourceARN": stream_arn} for record in records]}
    loaded: dict[str, Any] = json.loads(json.dumps(event, default=_epoch))
    return loaded


def replace_the_mapped_source_table(deployment: Deployment, settings: Settings) -> str:
    """Show what moto does with the stack's mapped stream, then make the table again
    by hand (without the mapping); return the new table's stream ARN."""
    dynamodb = deployment.client("dynamodb", retries={"max_attempts": 1})
    stream_arn = deployment.outputs["SourceStreamArn"]
    probe = {"PK": {"S": "PROBE"}, "SK": {"S": "PROBE"}}
    try:
        dynamodb.put_item(TableName=settings.table, Item=probe)
        write_failed = False
    except ClientError:
        write_failed = True  # no docker package: moto cannot even try to run the function
    # moto passes a mapped stream's new records to the function at once, through docker;
    # with no engine the invocation fails and moto drops the records from the stream.
    assert write_failed or stream_records(deployment, stream_arn) == []
    dynamodb.delete_table(TableName=settings.table)
    dynamodb.get_waiter("table_not_exists").wait(
        TableName=settings.table, WaiterConfig={"Delay": 1, "MaxAttempts": 30}
    )
    return ensure_table(settings, dynamodb)


def edit_merchant(table: Any, receipt: ReceiptSpec, index: int, edition: int) -> None:
    table.put_item(
        Item={
            "PK": image_pk(receipt.image_id),
            "SK": f"{receipt_sk(receipt.receipt_id)}#METADATA",
            **merchant_fields(index, edition),
        }
    )


def merchant_names(target: Any, collections: tuple[str, ...]) -> dict[tuple[str, int], set[str]]:
    """(image, receipt) → the merchant names its embeddings carry, in every collection."""
    names: dict[tuple[str, int], set[str]] = {}
    for collection in collections:
        for meta in target.collection(collection).get(include=["metadatas"])["metadatas"]:
            key = (meta["image_id"], meta["receipt_id"])
            names.setdefault(key, set()).add(meta.get("merchant_name"))
    return names


#: A merchant's display name (what Chroma carries) → its canonical name (the dashboard's key).
CANONICAL = {
    merchant_fields(index, edition)["merchant_name"]: merchant_fields(index, edition)[
        "canonical_merchant_name"
    ]
    for index in range(2)
    for edition in range(2)
}


def dashboard_merchants(deployment: Deployment) -> dict[tuple[str, int], set[str]]:
    """(image, receipt) → the merchants its receipt items are filed under in the dashboard."""
    items = deployment.client("dynamodb").scan(
        TableName=deployment.outputs["DashboardTableName"], ConsistentRead=True
    )["Items"]
    found: dict[tuple[str, int], set[str]] = {}
    for item in items:
        if item.get("kind", {}).get("S") == "receipt":
            key = (item["image_id"]["S"], int(item["receipt_id"]["N"]))
            found.setdefault(key, set()).add(item["merchant"]["S"])
    return found


def test_merchant_edits_flow_through_the_stacks_resources_into_chroma(
    deployment: Deployment, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One edit through the Lambda handler, one through ``chromasync poll --once``
    (checkpointing in the stack's table), both applied by the workers: to Chroma and,
    by the dashboard's worker, to the stack's dashboard table."""
    env = worker_env(deployment, tmp_path / "chroma")
    settings = Settings.from_env(env)
    assert (settings.table, settings.queue_prefix, settings.targets) == (
        "cfn-receipts",
        "cfn-",
        ("cfnlines", "cfnwords", "dashboard"),
    )
    assert env["CHROMASYNC_DASHBOARD_TABLE"] == PARAMETERS["DashboardTable"]
    stream_arn = replace_the_mapped_source_table(deployment, settings)
    table = boto3.resource("dynamodb", **settings.aws.client_kwargs()).Table(settings.table)
    receipts = demo_receipts(2, lines=2, words_per_line=2)
    written = seed_table(table, receipts)
    target = chroma_target_from_settings(WorkerSettings.from_env(env))
    seed_chroma(target, settings.lines_collection, "lines", receipts)
    seed_chroma(target, settings.words_collection, "words", receipts)

    workers = [
        WorkerProcess.start(c, settings.queue_for(c), env, tmp_path / f"worker-{c}.log")
        for c in settings.targets
    ]
    try:
        for worker in workers:
            wait_for(worker.ready, 60, interval=0.2, what=f"worker {worker.collection}")
        edit_merchant(table, receipts[0], 0, edition=1)

        # The Lambda's part, in-process: its environment is the function's, as moto keeps it.
        monkeypatch.delenv("CELERY_BROKER_URL", raising=False)
        for spec in REGISTRY:
            monkeypatch.delenv(spec.flag, raising=False)
        for name, value in {
            **deployment.server.client_env(),
            **deployment.function()["Environment"]["Variables"],
        }.items():
            monkeypatch.setenv(name, str(value))
        defaults.reset()
        pages = stream_records(deployment, stream_arn)
        # The seeded items' INSERTs and the edit's MODIFY, nothing of the probe.
        assert sum(len(page) for page in pages) == written + 1
        for page in pages:
            response = lambda_handler.handler(lambda_event(page, stream_arn), None)
            assert response == {"batchItemFailures": []}

        edited = (receipts[0].image_id, receipts[0].receipt_id)
        untouched = (receipts[1].image_id, receipts[1].receipt_id)
        wanted = {
            edited: {merchant_fields(0, 1)["merchant_name"]},
            untouched: {merchant_fields(1, 0)["merchant_name"]},
        }

        def applied() -> bool:
            for worker in workers:
                worker.check_alive()
            canonical = {key: {CANONICAL[name] for name in names} for key, names in wanted.items()}
            return (
                merchant_names(target, settings.collections) == wanted
                and dashboard_merchants(deployment) == canonical
            )

        wait_for(applied, 60, interval=0.5, what="Chroma to show the Lambda's edit")

        # The poller's part: the same resources, configured by the Environment output.
        edit_merchant(table, receipts[1], 1, edition=1)
        polled = subprocess.run(
            [sys.executable, "-m", "chromasync.cli", "poll", "--once"],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert polled.returncode == 0, polled.stdout + polled.stderr
        wanted[untouched] = {merchant_fields(1, 1)["merchant_name"]}
        wait_for(applied, 60, interval=0.5, what="Chroma to show the poller's edit")
    finally:
        defaults.reset()
        for worker in workers:
            worker.stop(timeout=15)

    # The poller checkpointed in the stack's checkpoint table, the workers locked through
    # its lock table; nothing was dead-lettered or quarantined.
    dynamodb = deployment.client("dynamodb")
    checkpoints = dynamodb.scan(TableName=deployment.outputs["CheckpointTableName"])["Items"]
    assert checkpoints and all(c["shard"]["S"].startswith(stream_arn) for c in checkpoints)
    locks = dynamodb.scan(TableName=deployment.outputs["LockTableName"])
    assert {item["lock_name"]["S"] for item in locks["Items"]} >= {
        f"collection:{c}" for c in settings.targets
    }
    sqs = deployment.client("sqs")
    for name in (
        *(settings.dlq_name(c) for c in settings.targets),
        queue_name("stream-rejects"),
    ):
        url = sqs.get_queue_url(QueueName=name)["QueueUrl"]
        counts = sqs.get_queue_attributes(
            QueueUrl=url,
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        assert counts == {
            "ApproximateNumberOfMessages": "0",
            "ApproximateNumberOfMessagesNotVisible": "0",
        }, name
