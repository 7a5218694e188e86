"""deploy/cloudformation.yaml against the code: policies, schemas, queue attributes, cfn-lint.

The template declares for AWS what ``chromasync provision`` creates locally, and
carries the policies of deploy/iam. Each test compares one part with the code
or file it must equal, so neither side can change alone. Deploying it is
tests/test_cloudformation_moto.py.
"""

from __future__ import annotations

import importlib.util
import json
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from chromasync.core.config import DEFAULT_VISIBILITY_TIMEOUT, Settings
from chromasync.provision import (
    MAX_MESSAGE_BYTES,
    MAX_RECEIVE_COUNT,
    SOURCE_TABLE_SCHEMA,
    ensure_queues,
)
from producers.checkpoints import DEFAULT_CHECKPOINT_URL
from producers.checkpoints.backends.dynamodb import CHECKPOINT_TABLE_SCHEMA
from producers.quarantine import QUARANTINE_RETENTION_SECONDS
from tasks.deadletter import dead_letter_queue_attributes
from tasks.locks.backends.dynamodb import LOCK_TABLE_SCHEMA
from tasks.sinks.dashboard.settings import DEFAULT_TABLE_SUFFIX
from tasks.sinks.dashboard.table import TABLE_SCHEMA as DASHBOARD_TABLE_SCHEMA
from tasks.sinks.dashboard.table import TTL_ATTRIBUTE
from tests.cloudformation import (
    IAM_DIR,
    ROOT,
    TEMPLATE,
    load_template,
    parameter_defaults,
    placeholders,
    policy_file,
    sub_text,
)

#: Where each deploy/iam file goes: (resource, inline policy name, or None for a managed policy).
POLICY_HOMES = {
    "producer-lambda": ("ProducerFunctionRole", "producer-lambda"),
    "poller": ("PollerRole", "poller"),
    "worker": ("WorkerRole", "worker"),
    "operator": ("OperatorPolicy", None),
}
#: The sinks the stack turns on by default (its Sinks parameter: the Lambda's and the
#: workers' CHROMASYNC_SINKS).
STACK_SINKS = "chroma,dashboard"
#: What the stack makes only with the dashboard on (condition WithDashboard).
DASHBOARD_RESOURCES = {"DashboardTableResource", "DashboardQueue", "DashboardDeadLetterQueue"}
#: CloudFormation's pseudo parameters a policy may name.
PSEUDO_PARAMETERS = {"AWS::Partition", "AWS::Region", "AWS::AccountId"}


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return load_template()


def resources(template: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    return {k: v for k, v in template["Resources"].items() if v["Type"] == kind}


@pytest.mark.slow
def test_cfn_lint_finds_nothing() -> None:
    """Zero errors, warnings and informational findings (-I)."""
    cfn_lint = Path(sys.executable).with_name("cfn-lint")
    done = subprocess.run(
        [str(cfn_lint), "-I", "--format", "parseable", str(TEMPLATE)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert (done.returncode, done.stdout) == (0, ""), done.stdout + done.stderr


# --- policies ---------------------------------------------------------------


def declared_policy(template: dict[str, Any], resource: str, name: str | None) -> Any:
    properties = template["Resources"][resource]["Properties"]
    if name is None:
        return properties["PolicyDocument"]
    # Exactly one inline policy: nothing granted beside the file.
    (policy,) = properties["Policies"]
    assert policy["PolicyName"] == name
    return policy["PolicyDocument"]


def test_every_policy_file_has_a_home() -> None:
    assert {p.stem for p in IAM_DIR.glob("*.json")} == set(POLICY_HOMES)


@pytest.mark.parametrize("name", sorted(POLICY_HOMES))
def test_policy_equals_its_deploy_iam_file(template: dict[str, Any], name: str) -> None:
    resource, inline = POLICY_HOMES[name]
    declared = declared_policy(template, resource, inline)
    assert sub_text(declared) == policy_file(name)


@pytest.mark.parametrize("name", sorted(POLICY_HOMES))
def test_policy_strings_with_placeholders_are_subs(template: dict[str, Any], name: str) -> None:
    """A placeholder outside ``!Sub`` would reach IAM as literal ``${...}`` text."""
    resource, inline = POLICY_HOMES[name]

    def plain_strings(value: Any) -> list[str]:
        if isinstance(value, dict):
            if set(value) == {"Fn::Sub"}:
                return []
            return [s for v in value.values() for s in plain_strings(v)]
        if isinstance(value, list):
            return [s for v in value for s in plain_strings(v)]
        return [value] if isinstance(value, str) else []

    declared = declared_policy(template, resource, inline)
    assert [s for s in plain_strings(declared) if "${" in s] == []


@pytest.mark.parametrize("name", sorted(POLICY_HOMES))
def test_policy_placeholders_name_parameters(template: dict[str, Any], name: str) -> None:
    assert placeholders(policy_file(name)) <= set(template["Parameters"]) | PSEUDO_PARAMETERS


def test_rendered_blocks_are_current() -> None:
    """``make cfn`` (deploy/render.py) would change nothing."""
    spec = importlib.util.spec_from_file_location("chromasync_render", ROOT / "deploy/render.py")
    assert spec is not None and spec.loader is not None
    render: ModuleType = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(render)
    text = TEMPLATE.read_text()
    assert render.rendered_paths(text) == [
        f"deploy/iam/{name}.json" for name in ("producer-lambda", "poller", "worker", "operator")
    ]
    assert render.render(text) == text


# --- tables -----------------------------------------------------------------


def table_schema(properties: dict[str, Any]) -> dict[str, Any]:
    """A table's properties as ``CreateTable`` arguments (the form of the Python constants)."""
    schema = {k: v for k, v in properties.items() if k != "TableName"}
    if "StreamSpecification" in schema:
        # CloudFormation has no StreamEnabled: a StreamSpecification is an enabled stream.
        schema["StreamSpecification"] = {"StreamEnabled": True, **schema["StreamSpecification"]}
    return schema


def test_source_table_is_provisions_schema(template: dict[str, Any]) -> None:
    table = template["Resources"]["SourceTable"]
    assert table["Condition"] == "CreateSourceTable"
    assert table["Properties"]["TableName"] == {"Ref": "TableName"}
    assert table_schema(table["Properties"]) == SOURCE_TABLE_SCHEMA


def test_checkpoint_and_lock_tables_are_the_code_schemas(template: dict[str, Any]) -> None:
    checkpoint = template["Resources"]["CheckpointTableResource"]["Properties"]
    lock = template["Resources"]["LockTableResource"]["Properties"]
    assert checkpoint["TableName"] == {"Ref": "CheckpointTable"}
    assert lock["TableName"] == {"Ref": "LockTable"}
    assert table_schema(checkpoint) == CHECKPOINT_TABLE_SCHEMA
    assert table_schema(lock) == LOCK_TABLE_SCHEMA
    # The parameters' defaults are the code's defaults.
    defaults = parameter_defaults(template)
    assert f"dynamodb://{defaults['CheckpointTable']}" == DEFAULT_CHECKPOINT_URL
    assert defaults["LockTable"] == f"{defaults['TableName']}-locks"  # dynamodb://{TABLE}-locks


def test_dashboard_table_is_the_sinks_schema_with_its_ttl(template: dict[str, Any]) -> None:
    """What ``DashboardSink.provision`` makes: the schema, then TTL on its attribute."""
    properties = dict(template["Resources"]["DashboardTableResource"]["Properties"])
    assert properties["TableName"] == {"Ref": "DashboardTable"}
    assert properties.pop("TimeToLiveSpecification") == {
        "AttributeName": TTL_ATTRIBUTE,
        "Enabled": True,
    }
    assert table_schema(properties) == DASHBOARD_TABLE_SCHEMA
    defaults = parameter_defaults(template)
    assert defaults["DashboardTable"] == f"{defaults['TableName']}{DEFAULT_TABLE_SUFFIX}"


def test_every_table_is_one_of_those(template: dict[str, Any]) -> None:
    assert set(resources(template, "AWS::DynamoDB::Table")) == {
        "SourceTable",
        "CheckpointTableResource",
        "LockTableResource",
        "DashboardTableResource",
    }


# --- queues -----------------------------------------------------------------


class RecordingSQS:
    """Stands in for boto3's SQS client: records what provisioning creates."""

    def __init__(self) -> None:
        self.created: dict[str, dict[str, str]] = {}

    def create_queue(self, QueueName: str, Attributes: dict[str, str]) -> dict[str, str]:  # noqa: N803
        self.created[QueueName] = Attributes
        return {"QueueUrl": QueueName}

    def get_queue_attributes(self, QueueUrl: str, AttributeNames: list[str]) -> dict[str, Any]:  # noqa: N803
        return {"Attributes": {"QueueArn": f"arn-of:{QueueUrl}"}}


def declared_queues(template: dict[str, Any]) -> dict[str, dict[str, str]]:
    """Each queue of the template with the parameters' defaults, in provisioning's form:
    name → attributes as strings, a RedrivePolicy as the JSON provisioning sends."""
    defaults = parameter_defaults(template)
    queues = resources(template, "AWS::SQS::Queue")

    def value(raw: Any) -> Any:
        if isinstance(raw, dict) and "Ref" in raw:
            return defaults[raw["Ref"]]
        if isinstance(raw, dict) and "Fn::Sub" in raw:
            return re.sub(r"\$\{(\w+)\}", lambda m: defaults[m.group(1)], raw["Fn::Sub"])
        if isinstance(raw, dict) and "Fn::GetAtt" in raw:
            resource, attribute = raw["Fn::GetAtt"]
            assert attribute == "Arn"
            return f"arn-of:{value(queues[resource]['Properties']['QueueName'])}"
        return raw

    declared = {}
    for queue in queues.values():
        properties = {k: value(v) for k, v in queue["Properties"].items()}
        name = properties.pop("QueueName")
        if "RedrivePolicy" in properties:
            policy = {k: value(v) for k, v in properties["RedrivePolicy"].items()}
            properties["RedrivePolicy"] = json.dumps(policy)
        declared[name] = {k: v if isinstance(v, str) else str(v) for k, v in properties.items()}
    return declared


def test_queues_are_what_provisioning_creates(template: dict[str, Any]) -> None:
    """Same names, same attributes, with the defaults of both sides (standard queues)
    and the stack's sinks."""
    sqs = RecordingSQS()
    ensure_queues(Settings.from_env({"CHROMASYNC_SINKS": STACK_SINKS}), client=sqs)
    assert declared_queues(template) == sqs.created


def test_queue_attributes_are_the_code_constants(template: dict[str, Any]) -> None:
    """The same, spelled out against each constant (a failure above names the queue)."""
    queues = declared_queues(template)
    for collection in ("lines", "words", "dashboard"):
        queue = queues[f"chromasync-{collection}"]
        assert queue["VisibilityTimeout"] == str(DEFAULT_VISIBILITY_TIMEOUT)
        assert queue["MaximumMessageSize"] == str(MAX_MESSAGE_BYTES)
        assert json.loads(queue["RedrivePolicy"]) == {
            "deadLetterTargetArn": f"arn-of:chromasync-{collection}-dlq",
            "maxReceiveCount": MAX_RECEIVE_COUNT,
        }
        assert queues[f"chromasync-{collection}-dlq"] == dead_letter_queue_attributes(False)
    assert queues["chromasync-stream-rejects"] == {
        "MessageRetentionPeriod": str(QUARANTINE_RETENTION_SECONDS)
    }
    assert not any("FifoQueue" in attributes for attributes in queues.values())


# --- the Lambda and its event source mapping ---------------------------------


def test_lambda_environment_names_the_parameters(template: dict[str, Any]) -> None:
    function = template["Resources"]["ProducerFunction"]["Properties"]
    assert (function["Runtime"], function["Handler"]) == (
        "python3.11",
        "producers.lambda_handler.handler",
    )
    assert function["Code"] == {"S3Bucket": {"Ref": "CodeBucket"}, "S3Key": {"Ref": "CodeKey"}}
    assert function["Environment"]["Variables"] == {
        "CHROMASYNC_TABLE": {"Ref": "TableName"},
        "CHROMASYNC_QUEUE_PREFIX": {"Ref": "QueuePrefix"},
        "CHROMASYNC_COLLECTIONS": {"Fn::Sub": "${LinesCollection},${WordsCollection}"},
        "CHROMASYNC_SINKS": {"Ref": "Sinks"},
        "CHROMASYNC_FIFO": "false",
        "CHROMASYNC_MAX_CHANGES_PER_TASK": {"Ref": "MaxChangesPerTask"},
    }


def documented_mapping_settings() -> dict[str, Any]:
    """The settings table of docs/operations.md, "The stream and the Lambda":
    setting → the value in backticks that opens its value column."""
    text = (ROOT / "docs" / "operations.md").read_text()
    section = text.split("### The stream and the Lambda", 1)[1].split("\n### ", 1)[0]
    rows = re.findall(r"^\| `([A-Za-z.]+)` \| `([^`]+)`", section, re.M)
    settings: dict[str, Any] = {}
    for name, raw in rows:
        try:
            settings[name] = json.loads(raw)
        except ValueError:
            settings[name] = raw
    return settings


def default_of(template: dict[str, Any], value: Any) -> Any:
    """A ``!Ref`` to a parameter as its default (a number for a Number), other values as is."""
    if not (isinstance(value, dict) and "Ref" in value):
        return value
    parameter = template["Parameters"][value["Ref"]]
    return int(parameter["Default"]) if parameter["Type"] == "Number" else parameter["Default"]


def test_event_source_mapping_is_the_documented_one(template: dict[str, Any]) -> None:
    mapping = template["Resources"]["ProducerEventSourceMapping"]["Properties"]
    declared = {
        name: default_of(template, value)
        for name, value in mapping.items()
        if name not in ("FunctionName", "EventSourceArn", "DestinationConfig")
    }
    documented = documented_mapping_settings()
    assert documented.pop("DestinationConfig.OnFailure") == "chromasync-stream-rejects"
    assert declared == documented
    assert mapping["DestinationConfig"] == {
        "OnFailure": {"Destination": {"Fn::GetAtt": ["QuarantineQueue", "Arn"]}}
    }
    assert mapping["EventSourceArn"] == {
        "Fn::If": [
            "CreateSourceTable",
            {"Fn::GetAtt": ["SourceTable", "StreamArn"]},
            {"Ref": "SourceStreamArn"},
        ]
    }


# --- outputs ----------------------------------------------------------------


def test_outputs_name_every_queue_table_and_bucket(template: dict[str, Any]) -> None:
    referenced = {
        output["Value"]["Ref"]
        for output in template["Outputs"].values()
        if isinstance(output["Value"], dict) and "Ref" in output["Value"]
    }
    named = {
        *resources(template, "AWS::SQS::Queue"),
        *resources(template, "AWS::DynamoDB::Table"),
        *resources(template, "AWS::S3::Bucket"),
    } - {"SourceTable"}
    # The source table may be an existing one: its output is the parameter (and the stream).
    assert named | {"TableName", "DeltaBucket"} <= referenced


# --- the dashboard, optional ------------------------------------------------------


def test_the_sinks_parameter_turns_the_dashboard_on_and_off(template: dict[str, Any]) -> None:
    """``Sinks`` is the stack's CHROMASYNC_SINKS; the dashboard's resources and outputs
    exist only when it names the dashboard, and each value is one the code accepts."""
    parameter = template["Parameters"]["Sinks"]
    assert parameter["Default"] == STACK_SINKS
    for value in parameter["AllowedValues"]:
        assert ",".join(Settings.from_env({"CHROMASYNC_SINKS": value}).sinks) == value
    assert template["Conditions"]["WithDashboard"] == {
        "Fn::Equals": [{"Ref": "Sinks"}, "chroma,dashboard"]
    }
    conditional = {
        name
        for name, resource in template["Resources"].items()
        if resource.get("Condition") == "WithDashboard"
    }
    assert conditional == DASHBOARD_RESOURCES
    outputs = template["Outputs"]
    dashboard_outputs = {n for n, o in outputs.items() if o.get("Condition") == "WithDashboard"}
    assert dashboard_outputs == {
        "DashboardQueueUrl",
        "DashboardDeadLetterQueueUrl",
        "DashboardTableName",
    }
    # No output outside the condition names a dashboard resource unconditionally.
    unconditional = json.dumps(
        [o for n, o in outputs.items() if n not in dashboard_outputs and n != "Environment"]
    )
    assert not any(name in unconditional for name in DASHBOARD_RESOURCES)
    (common, dashboard) = outputs["Environment"]["Value"]["Fn::Join"][1]
    assert "CHROMASYNC_SINKS=${Sinks}" in json.dumps(common)
    assert "Dashboard" not in json.dumps(common)
    assert dashboard == {
        "Fn::If": [
            "WithDashboard",
            {"Fn::Sub": " CHROMASYNC_DASHBOARD_TABLE=${DashboardTableResource}"},
            "",
        ]
    }
