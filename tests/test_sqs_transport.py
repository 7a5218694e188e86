"""chromasync.core.sqs_transport against kombu as installed and a real moto server.

The channel overrides private methods of kombu's SQS channel; if kombu renamed
one, ours would silently stop being called and kombu would list and create
queues again. These tests pin both the names and the calls made on the wire.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from kombu import Connection, Queue
from kombu.transport.SQS import Channel as KombuChannel

from chromasync.core.celery_settings import celery_settings
from chromasync.core.config import Settings
from chromasync.core.resources import MissingResource
from chromasync.core.sqs_transport import TRANSPORT_PATH, LookupChannel
from chromasync.provision import ensure_queues


@pytest.mark.parametrize(
    "name",
    ["_update_queue_cache", "_resolve_queue_url", "_new_queue", "queue_declare", "_create_queue"],
)
def test_every_method_overridden_is_one_kombu_calls(name: str) -> None:
    assert callable(getattr(KombuChannel, name, None)), f"kombu's SQS channel has no {name}"
    assert name in vars(LookupChannel)


@pytest.fixture
def connection(producer_env: dict[str, str]) -> Iterator[tuple[Connection, list[str]]]:
    """A kombu connection as the producer and worker configure it; the SQS operations it
    makes are recorded."""
    conf = celery_settings(producer_env)
    assert conf["broker_transport"] == TRANSPORT_PATH
    conn = Connection(
        conf["broker_url"],
        transport=conf["broker_transport"],
        transport_options=conf["broker_transport_options"],
    )
    calls: list[str] = []

    def record(model: Any, **_: Any) -> None:
        calls.append(model.name)

    conn.default_channel.sqs().meta.events.register("before-call.sqs", record)
    yield conn, calls
    conn.release()


def test_sending_looks_the_queue_up_once_and_lists_creates_counts_nothing(
    connection: tuple[Connection, list[str]], producer_env: dict[str, str]
) -> None:
    conn, calls = connection
    settings = Settings.from_env(producer_env)
    ensure_queues(settings)
    producer = conn.Producer()
    for n in range(2):
        producer.publish({"n": n}, routing_key="lines", declare=[Queue("lines")])
    assert calls == ["GetQueueUrl", "SendMessage", "SendMessage"]


def test_a_missing_queue_is_named_and_never_created(
    connection: tuple[Connection, list[str]], producer_env: dict[str, str]
) -> None:
    conn, calls = connection
    settings = Settings.from_env(producer_env)
    with pytest.raises(MissingResource) as missing:
        conn.Producer().publish({"n": 1}, routing_key="lines", declare=[Queue("lines")])
    assert f"SQS queue '{settings.sqs_queue_name('lines')}' does not exist" in str(missing.value)
    assert "chromasync provision" in str(missing.value)
    # A consumer declaring its queue (what a worker does at start) fails the same way.
    with pytest.raises(MissingResource):
        Queue("words", channel=conn.default_channel).declare()
    assert "CreateQueue" not in calls and "ListQueues" not in calls
    sqs = boto3.client("sqs", **settings.aws.client_kwargs())
    assert sqs.list_queues().get("QueueUrls", []) == []
