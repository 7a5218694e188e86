"""``CHROMASYNC_TABLE_ENDPOINT_URL``: the source table's clients go there, the others do not.

The settings tests build clients without a network call (boto3 resolves the endpoint
when the client is made). The last test reads a receipt with the worker's
``TableReader`` from a dynalite while every other service is a moto: it is skipped
where dynalite is not installed (it needs Node.js; tests reach no registry).
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest

from benchmarks import table_standin
from chromasync.core.config import LOCAL_CREDENTIALS, AwsSettings, ConfigError, Settings
from chromasync.local import MotoServer
from chromasync.seed import demo_receipts
from tasks.config import WorkerSettings
from tasks.deltas.merger import S3DeltaMerger
from tasks.sources import WHOLE_RECEIPT, TableReader

TABLE_URL = "http://127.0.0.1:8123"
AWS_URL = "http://127.0.0.1:5999"


def test_unset_means_the_table_is_with_everything_else() -> None:
    aws = AwsSettings.from_env({"AWS_ENDPOINT_URL": AWS_URL})
    assert aws.table_endpoint_url is None
    assert aws.for_table() is aws
    assert aws.table_client_kwargs() == aws.client_kwargs()


def test_the_table_endpoint_replaces_only_the_tables_endpoint() -> None:
    env = {
        "AWS_ENDPOINT_URL": AWS_URL,
        "AWS_ACCESS_KEY_ID": "key",
        "AWS_SECRET_ACCESS_KEY": "secret",
        "CHROMASYNC_TABLE_ENDPOINT_URL": TABLE_URL,
    }
    aws = Settings.from_env(env).aws
    assert aws.table_endpoint_url == TABLE_URL
    assert aws.client_kwargs()["endpoint_url"] == AWS_URL
    table = aws.table_client_kwargs()
    assert table["endpoint_url"] == TABLE_URL
    assert (table["aws_access_key_id"], table["aws_secret_access_key"]) == ("key", "secret")
    assert table["region_name"] == aws.region


def test_a_local_table_endpoint_gets_local_credentials_when_none_are_named() -> None:
    # On AWS (no AWS_ENDPOINT_URL, no keys: the role's chain) with the table elsewhere.
    aws = AwsSettings.from_env({"CHROMASYNC_TABLE_ENDPOINT_URL": TABLE_URL})
    assert "endpoint_url" not in aws.client_kwargs()
    assert "aws_access_key_id" not in aws.client_kwargs()
    table = aws.table_client_kwargs()
    assert table["aws_access_key_id"] == LOCAL_CREDENTIALS
    assert table["endpoint_url"] == TABLE_URL


def test_a_malformed_table_endpoint_names_the_variable() -> None:
    with pytest.raises(ConfigError, match="CHROMASYNC_TABLE_ENDPOINT_URL"):
        AwsSettings.from_env({"CHROMASYNC_TABLE_ENDPOINT_URL": "dynalite:8000"})


def test_the_delta_merger_marks_runs_in_the_table_and_fetches_from_s3() -> None:
    env = {"AWS_ENDPOINT_URL": AWS_URL, "CHROMASYNC_TABLE_ENDPOINT_URL": TABLE_URL}
    merger = S3DeltaMerger.from_settings(WorkerSettings.from_env(env))
    assert merger._client("dynamodb").meta.endpoint_url == TABLE_URL
    assert merger._client("s3").meta.endpoint_url == AWS_URL


def test_the_readers_client_goes_to_the_table_endpoint() -> None:
    env = {"AWS_ENDPOINT_URL": AWS_URL, "CHROMASYNC_TABLE_ENDPOINT_URL": TABLE_URL}
    aws = AwsSettings.from_env(env)
    assert TableReader(aws.for_table(), "t").client.meta.endpoint_url == TABLE_URL


@pytest.fixture
def dynalite(tmp_path: Path) -> Iterator[table_standin.DynaliteServer]:
    if shutil.which("node") is None or not table_standin.installed():
        pytest.skip("dynalite is not installed (benchmarks.table_standin.install())")
    server = table_standin.DynaliteServer.start(log=tmp_path / "dynalite.log")
    try:
        yield server
    finally:
        server.stop()


def test_a_reader_reads_the_table_from_the_table_endpoint(
    dynalite: table_standin.DynaliteServer, moto: MotoServer
) -> None:
    from benchmarks.table_probe import TABLE, create_table, seed

    receipts = demo_receipts(1, lines=2, words_per_line=2)
    create_table(dynalite.url)
    items = seed(dynalite.url, receipts)
    env = {
        **moto.client_env(),
        "CHROMASYNC_TABLE": TABLE,
        "CHROMASYNC_TABLE_ENDPOINT_URL": dynalite.url,
    }
    shared = Settings.from_env(env)
    # The table is only at dynalite: moto does not hold it.
    on_moto = boto3.client("dynamodb", **shared.aws.client_kwargs())
    assert TABLE not in on_moto.list_tables()["TableNames"]
    reader = TableReader(shared.aws.for_table(), shared.table)
    key = (receipts[0].image_id, receipts[0].receipt_id)
    state = reader.read({key: WHOLE_RECEIPT})[key]
    assert sum(len(by_key) for by_key in state.items.values()) == items


def test_the_workers_probe_reaches_the_table_where_it_reads_it(moto: MotoServer) -> None:
    from botocore.exceptions import EndpointConnectionError

    from chromasync.local import free_port
    from chromasync.provision import ensure_table
    from tasks.preflight import _source_table, aws_client

    env = {**moto.client_env(), "CHROMASYNC_TABLE": "probed"}
    with_moto = WorkerSettings.from_env(env)
    dynamodb = aws_client(with_moto, "dynamodb")
    ensure_table(with_moto.shared, client=dynamodb)
    _source_table(with_moto, dynamodb)  # the table is at moto: it answers
    elsewhere = {**env, "CHROMASYNC_TABLE_ENDPOINT_URL": f"http://127.0.0.1:{free_port()}"}
    with pytest.raises(EndpointConnectionError):
        _source_table(WorkerSettings.from_env(elsewhere), dynamodb)
