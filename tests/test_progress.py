"""Progress stores behind one interface: Redis, DynamoDB (moto server) and in-process memory.

Every case runs on each store, since ``status`` and the exporter must not
care which one ``CHROMASYNC_LOCK_URL`` picked.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator

import pytest

from chromasync.core.config import AwsSettings
from chromasync.provision import ensure_lock_table
from tasks.progress.backend import AppliedBatch, ProgressStore
from tasks.progress.factory import progress_store_from_url
from tests.servers import MotoServer, redis_url

#: Lock table the DynamoDB store uses in these tests.
TABLE = "chromasync-test-progress"

Open = Callable[[], ProgressStore]


@pytest.fixture(params=["memory", "redis", "dynamodb"])
def open_store(request: pytest.FixtureRequest) -> Iterator[Open]:
    """Opens a store on one place; every store it opens shares that place's records."""
    aws: AwsSettings | None = None
    if request.param == "memory":
        url = f"memory://progress-{uuid.uuid4().hex[:8]}"
    elif request.param == "redis":
        request.getfixturevalue("redis_client")  # a clean db, fails clearly if Redis is down
        url = redis_url()
    else:
        moto: MotoServer = request.getfixturevalue("moto")
        aws = AwsSettings(
            endpoint_url=moto.url,
            region="us-east-1",
            access_key_id="testing",
            secret_access_key="testing",
        )
        ensure_lock_table(aws, TABLE)
        url = f"dynamodb://{TABLE}"
    opened: list[ProgressStore] = []

    def open_() -> ProgressStore:
        opened.append(progress_store_from_url(url, aws))
        return opened[-1]

    yield open_
    for store in opened:
        store.close()


def applied(collection: str, fence: int, batch_id: str = "b") -> AppliedBatch:
    return AppliedBatch(
        collection=collection,
        batch_id=batch_id,
        applied_at=1_700_000_000.5,
        fence=fence,
        changes=3,
        highest_sequence="1234567890123456789012",
        lag=0.25,
        worker="host:42",
    )


def test_nothing_applied_yet_reads_none(open_store: Open) -> None:
    assert open_store().last("lines") is None


def test_a_record_reads_back_whole(open_store: Open) -> None:
    store = open_store()
    batch = applied("lines", fence=3)
    assert store.record(batch) is True
    assert store.last("lines") == batch


def test_only_a_higher_fence_replaces_a_record(open_store: Open) -> None:
    store = open_store()
    assert store.record(applied("lines", fence=5, batch_id="current"))
    # A worker whose lease came before (or is the same) finishes late: its batch is kept out.
    assert store.record(applied("lines", fence=4, batch_id="late")) is False
    assert store.record(applied("lines", fence=5, batch_id="same")) is False
    assert store.last("lines") == applied("lines", fence=5, batch_id="current")
    assert store.record(applied("lines", fence=6, batch_id="next")) is True
    assert store.last("lines") == applied("lines", fence=6, batch_id="next")


def test_collections_are_kept_apart(open_store: Open) -> None:
    store = open_store()
    store.record(applied("lines", fence=9))
    store.record(applied("words", fence=1))
    assert store.last("lines") == applied("lines", fence=9)
    assert store.last("words") == applied("words", fence=1)


def test_a_second_store_on_the_same_url_reads_what_the_first_recorded(open_store: Open) -> None:
    writer, reader = open_store(), open_store()
    writer.record(applied("lines", fence=2))
    assert reader.last("lines") == applied("lines", fence=2)


def test_the_store_names_where_it_is_without_a_password() -> None:
    store = progress_store_from_url("redis://:hunter2@127.0.0.1:1/0")
    assert store.where == "Redis lock store at redis://:***@127.0.0.1:1/0"
    store.close()
    assert progress_store_from_url("memory://here").where == "in-process lock store 'here'"
