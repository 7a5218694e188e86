"""The worker's direct read client (``tasks.dynamo_direct``): its signatures, errors and retries.

Signatures are proven against a moto server of this module's own enforcing IAM
(moto recomputes Signature Version 4 for every request and refuses a mismatch):
an IAM user's keys read, a wrong secret is refused, and an assumed role's
temporary credentials (a session token, as a Lambda or a task role has) read.
What moto cannot do (throttle) is played by a small HTTP server on 127.0.0.1 that
answers DynamoDB's throttling error before it answers the read.
"""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from chromasync.core.config import AwsSettings, Settings
from chromasync.local import MotoServer
from chromasync.provision import ensure_table
from tasks.dynamo_direct import DirectReadClient
from tasks.dynamo_reads import read_client
from tasks.errors import is_transient
from tests.iam import admin_keys, create_user_keys

TABLE = "direct-reads"
REGION = "us-east-1"
ITEM = {"PK": {"S": "IMAGE#a"}, "SK": {"S": "RECEIPT#00001"}, "n": {"N": "7"}}
READER_POLICY = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Sid": "Read",
            "Effect": "Allow",
            "Action": ["dynamodb:Query", "dynamodb:GetItem", "dynamodb:BatchGetItem"],
            "Resource": f"arn:aws:dynamodb:{REGION}:123456789012:table/{TABLE}",
        }
    ],
}


def _aws(url: str, keys: dict[str, str]) -> AwsSettings:
    return AwsSettings(
        endpoint_url=url,
        region=REGION,
        access_key_id=keys["AWS_ACCESS_KEY_ID"],
        secret_access_key=keys["AWS_SECRET_ACCESS_KEY"],
        session_token=keys.get("AWS_SESSION_TOKEN"),
    )


@pytest.fixture(scope="module")
def enforcing() -> Iterator[tuple[MotoServer, dict[str, str]]]:
    server = MotoServer.start()
    try:
        admin = admin_keys(server)
        ddb = boto3.client("dynamodb", **_aws(server.url, admin).client_kwargs())
        ensure_table(Settings.from_env({"CHROMASYNC_TABLE": TABLE}), client=ddb)
        ddb.put_item(TableName=TABLE, Item=ITEM)
        server.enforce_iam()
        yield server, admin
    finally:
        server.stop()


def _query(client: Any) -> list[dict[str, Any]]:
    return client.query(
        TableName=TABLE,
        KeyConditionExpression="PK = :pk AND begins_with(SK, :sk)",
        ExpressionAttributeValues={":pk": {"S": "IMAGE#a"}, ":sk": {"S": "RECEIPT#"}},
        ConsistentRead=True,
    )["Items"]


def test_an_iam_users_signed_reads_are_served(enforcing: tuple[MotoServer, dict]) -> None:
    server, admin = enforcing
    keys = create_user_keys(server.url, admin, "direct-reader", READER_POLICY)
    client = read_client(_aws(server.url, keys))
    assert isinstance(client, DirectReadClient)
    assert _query(client) == [ITEM]
    assert client.batch_get_item(
        RequestItems={TABLE: {"Keys": [{"PK": ITEM["PK"], "SK": ITEM["SK"]}]}}
    )["Responses"][TABLE] == [ITEM]
    # The policy holds: a Scan is refused, as AWS refuses it.
    with pytest.raises(ClientError) as refused:
        client.scan(TableName=TABLE)
    assert refused.value.response["Error"]["Code"] == "AccessDeniedException"
    assert not is_transient(refused.value)


def test_a_wrong_secret_is_refused(enforcing: tuple[MotoServer, dict]) -> None:
    server, admin = enforcing
    keys = create_user_keys(server.url, admin, "direct-wrong", READER_POLICY)
    client = read_client(_aws(server.url, {**keys, "AWS_SECRET_ACCESS_KEY": "not-the-secret"}))
    with pytest.raises(ClientError) as refused:
        _query(client)
    assert "Signature" in refused.value.response["Error"]["Code"]


def test_temporary_credentials_sign_with_their_session_token(
    enforcing: tuple[MotoServer, dict],
) -> None:
    server, admin = enforcing
    iam = boto3.client("iam", **_aws(server.url, admin).client_kwargs())
    trust = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"AWS": "arn:aws:iam::123456789012:user/direct-assumer"},
                "Action": "sts:AssumeRole",
            }
        ],
    }
    role = iam.create_role(RoleName="direct-role", AssumeRolePolicyDocument=json.dumps(trust))
    iam.put_role_policy(
        RoleName="direct-role", PolicyName="read", PolicyDocument=json.dumps(READER_POLICY)
    )
    assume = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole", "Resource": "*"}],
    }
    assumer = create_user_keys(server.url, admin, "direct-assumer", assume)
    sts = boto3.client("sts", **_aws(server.url, assumer).client_kwargs())
    temporary = sts.assume_role(RoleArn=role["Role"]["Arn"], RoleSessionName="worker")
    creds = temporary["Credentials"]
    keys = {
        "AWS_ACCESS_KEY_ID": creds["AccessKeyId"],
        "AWS_SECRET_ACCESS_KEY": creds["SecretAccessKey"],
        "AWS_SESSION_TOKEN": creds["SessionToken"],
    }
    assert _query(read_client(_aws(server.url, keys))) == [ITEM]
    with pytest.raises(ClientError):  # the token is signed: without it the keys are unknown
        _query(read_client(_aws(server.url, {**keys, "AWS_SESSION_TOKEN": ""})))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_an_unreachable_endpoint_is_a_transient_connection_error() -> None:
    client = read_client(_aws(f"http://127.0.0.1:{_free_port()}", {
        "AWS_ACCESS_KEY_ID": "k", "AWS_SECRET_ACCESS_KEY": "s"}))  # fmt: skip
    with pytest.raises(ConnectionError) as failed:
        _query(client)
    assert is_transient(failed.value)


class _Throttling(BaseHTTPRequestHandler):
    """DynamoDB that throttles the first ``throttles`` reads, then answers the item."""

    throttles = 0
    seen: list[str] = []

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        self.rfile.read(int(self.headers["Content-Length"]))
        type(self).seen.append(self.headers["Authorization"])
        if len(type(self).seen) <= type(self).throttles:
            status = 400
            body = {
                "__type": "com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException",
                "message": "slow down",
            }
        else:
            status, body = 200, {"Items": [ITEM], "Count": 1, "ScannedCount": 1}
        raw = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/x-amz-json-1.0")
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.mark.parametrize(("throttles", "served"), [(2, True), (3, False)])
def test_throttling_is_tried_again_then_left_to_the_task(throttles: int, served: bool) -> None:
    _Throttling.throttles, _Throttling.seen = throttles, []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Throttling)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        client = read_client(_aws(url, {"AWS_ACCESS_KEY_ID": "k", "AWS_SECRET_ACCESS_KEY": "s"}))
        if served:
            assert _query(client) == [ITEM]
        else:
            with pytest.raises(ClientError) as throttled:
                _query(client)
            code = throttled.value.response["Error"]["Code"]
            assert code == "ProvisionedThroughputExceededException"
            assert is_transient(throttled.value)
        assert len(_Throttling.seen) == 3
        assert all(a.startswith("AWS4-HMAC-SHA256 Credential=k/") for a in _Throttling.seen)
    finally:
        server.shutdown()
        server.server_close()


def test_a_proxy_for_the_endpoint_gives_botocores_client(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://127.0.0.1:9")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    aws = AwsSettings(None, REGION, "k", "s")
    assert not isinstance(read_client(aws), DirectReadClient)
    monkeypatch.delenv("HTTPS_PROXY")
    assert isinstance(read_client(aws), DirectReadClient)
