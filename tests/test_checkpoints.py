"""Checkpoint stores against the real stores (a moto server, redis-server) and the
in-process one: every behaviour test runs on every backend, since the poller must not
care which one ``CHROMASYNC_CHECKPOINT_URL`` picked."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator

import boto3
import pytest

from chromasync.core.config import AwsSettings, ConfigError
from chromasync.core.resources import MissingResource
from chromasync.provision import ensure_dynamodb_table
from producers.checkpoints import (
    DEFAULT_CHECKPOINT_URL,
    checkpoint_store_from_env,
    checkpoint_table,
)
from producers.checkpoints.backend import CheckpointStore
from producers.checkpoints.backends.dynamodb import (
    CHECKPOINT_TABLE_SCHEMA,
    DynamoDBCheckpointStore,
)
from producers.checkpoints.backends.memory import MemoryCheckpointStore
from producers.checkpoints.backends.redis import RedisCheckpointStore
from tests.servers import MotoServer, redis_url
from tests.stores import store_params

STREAM = "arn:aws:dynamodb:us-east-1:123456789012:table/receipts/stream/2024-01-01T00:00:00"
OTHER_STREAM = STREAM.replace("receipts", "others")


def aws_for(moto: MotoServer) -> AwsSettings:
    return AwsSettings(
        endpoint_url=moto.url, region="us-east-1", access_key_id="testing", secret_access_key="t"
    )


#: A store factory: each call is a new client of the same store (a restarted poller).
Opener = Callable[[], CheckpointStore]


@pytest.fixture(params=store_params("dynamodb", "redis"))
def opener(request: pytest.FixtureRequest) -> Iterator[Opener]:
    if request.param == "dynamodb":
        moto: MotoServer = request.getfixturevalue("moto")
        table = f"checkpoints-{uuid.uuid4().hex[:8]}"
        aws = aws_for(moto)
        client = boto3.client("dynamodb", **aws.client_kwargs())
        ensure_dynamodb_table(client, table, CHECKPOINT_TABLE_SCHEMA)
        client.close()
        url = f"dynamodb://{table}"
    elif request.param == "redis":
        request.getfixturevalue("redis_client")  # clean db, fails clearly if Redis is down
        aws, url = None, redis_url()
    else:
        aws, url = None, f"memory://test-{uuid.uuid4().hex[:8]}"
    opened: list[CheckpointStore] = []

    def open_store() -> CheckpointStore:
        store = checkpoint_store_from_env({"CHROMASYNC_CHECKPOINT_URL": url}, aws)
        opened.append(store)
        return store

    yield open_store
    for store in opened:
        store.close()


def test_a_new_shard_has_no_checkpoint_and_is_open(opener: Opener) -> None:
    store = opener()
    assert store.get(STREAM, "shard-1") is None
    assert not store.is_closed(STREAM, "shard-1")


def test_the_last_put_is_what_a_restarted_poller_reads(opener: Opener) -> None:
    first = opener()
    first.put(STREAM, "shard-1", "100")
    first.put(STREAM, "shard-1", "200")
    assert opener().get(STREAM, "shard-1") == "200"


def test_shards_and_streams_are_kept_apart(opener: Opener) -> None:
    store = opener()
    store.put(STREAM, "shard-1", "100")
    store.put(STREAM, "shard-2", "300")
    store.mark_closed(STREAM, "shard-2")
    assert store.get(STREAM, "shard-2") == "300"
    assert store.get(OTHER_STREAM, "shard-1") is None
    assert not store.is_closed(STREAM, "shard-1")
    assert not store.is_closed(OTHER_STREAM, "shard-2")


def test_closing_keeps_the_checkpoint(opener: Opener) -> None:
    store = opener()
    store.put(STREAM, "shard-1", "100")
    store.mark_closed(STREAM, "shard-1")
    again = opener()
    assert again.is_closed(STREAM, "shard-1")
    assert again.get(STREAM, "shard-1") == "100"


def test_a_closed_shard_without_a_checkpoint_stays_without_one(opener: Opener) -> None:
    store = opener()
    store.mark_closed(STREAM, "shard-1")
    assert (store.get(STREAM, "shard-1"), store.is_closed(STREAM, "shard-1")) == (None, True)


# -- choosing a backend --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "kind", "table"),
    [
        (None, DynamoDBCheckpointStore, DEFAULT_CHECKPOINT_URL.removeprefix("dynamodb://")),
        ("dynamodb://mine", DynamoDBCheckpointStore, "mine"),
        ("redis://127.0.0.1:1/0", RedisCheckpointStore, None),
        ("memory://mine", MemoryCheckpointStore, None),
    ],
)
def test_the_url_picks_the_store_and_creates_nothing(
    url: str | None, kind: type[CheckpointStore], table: str | None
) -> None:
    env = {"CHROMASYNC_CHECKPOINT_URL": url} if url else {}
    aws = AwsSettings("http://127.0.0.1:1", "us-east-1", "testing", "testing")
    store = checkpoint_store_from_env(env, aws)
    assert isinstance(store, kind)
    assert checkpoint_table(env) == table
    store.close()


@pytest.mark.parametrize(
    "url", ["ftp://somewhere", "dynamodb://", "memory://", "redis", "memcached://127.0.0.1"]
)
def test_the_url_is_checked(url: str) -> None:
    env = {"CHROMASYNC_CHECKPOINT_URL": url}
    with pytest.raises(ConfigError, match="CHROMASYNC_CHECKPOINT_URL="):
        checkpoint_store_from_env(env)
    with pytest.raises(ConfigError, match="CHROMASYNC_CHECKPOINT_URL="):
        checkpoint_table(env)


def test_a_missing_dynamodb_table_is_named(moto: MotoServer) -> None:
    store = checkpoint_store_from_env(
        {"CHROMASYNC_CHECKPOINT_URL": "dynamodb://gone"}, aws_for(moto)
    )
    for call in (
        lambda: store.get(STREAM, "shard-1"),
        lambda: store.put(STREAM, "shard-1", "1"),
        lambda: store.mark_closed(STREAM, "shard-1"),
    ):
        with pytest.raises(MissingResource, match="'gone' does not exist.*provision"):
            call()
    store.close()
