"""The Python API for other services (``producers.enqueue``) and the documented send_task path."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from celery import Celery

import producers
from chromasync.core.config import ConfigError, Settings
from chromasync.core.contract import Change, ChangeBatch
from chromasync.core.resources import DeploymentError, MissingResource
from chromasync.local import free_port
from producers import (
    ChangeTooLarge,
    EnqueueError,
    InvalidChange,
    NotConfigured,
    NotDeployed,
    PublishError,
    PublishFailed,
)
from tests.producing import IMAGE, Queues, line_record, record

README = Path(__file__).resolve().parent.parent / "README.md"


def label_change(word: int, status: str = "VALID") -> dict[str, Any]:
    return {
        "entity_type": "RECEIPT_WORD_LABEL",
        "event_name": "MODIFY",
        "keys": {"image_id": IMAGE, "receipt_id": 1, "line_id": 2, "word_id": word, "label": "X"},
        "changes": {"validation_status": {"old": "PENDING", "new": status}},
        "sequence_number": str(1000 + word),
        "event_id": f"svc-{word}",
    }


def changes_on(queues: Queues, collection: str) -> list[tuple[str, str]]:
    return [
        (t.batch.producer, c.event_id) for t in queues.tasks(collection) for c in t.batch.changes
    ]


def test_enqueue_routes_validates_and_publishes(producer_env: dict[str, str]) -> None:
    queues = Queues(Settings.from_env())
    line = Change(
        entity_type="RECEIPT_LINE",
        event_name="REMOVE",
        keys={"image_id": IMAGE, "receipt_id": 1, "line_id": 2},
        sequence_number="7",
        event_id="svc-line",
    )
    published = producers.enqueue([label_change(1), line, label_change(2)], producer="billing")
    assert sorted((p.collection, p.changes) for p in published) == [("lines", 3), ("words", 2)]
    assert changes_on(queues, "words") == [("billing", "svc-1"), ("billing", "svc-2")]
    assert changes_on(queues, "lines") == [
        ("billing", "svc-1"),
        ("billing", "svc-line"),
        ("billing", "svc-2"),
    ]
    # A collection given: every change goes there only.
    producers.enqueue([label_change(3)], collection="words")
    assert changes_on(queues, "words") == [("chromasync.api", "svc-3")]
    assert changes_on(queues, "lines") == []


def test_enqueue_refuses_bad_input_before_sending_anything(producer_env: dict[str, str]) -> None:
    queues = Queues(Settings.from_env())
    bad = {**label_change(2), "keys": {"image_id": IMAGE, "receipt_id": 1}}
    with pytest.raises(
        InvalidChange,
        match=r"change 1 does not fit.*RECEIPT_WORD_LABEL\.keys\.line_id: Field required",
    ):
        producers.enqueue([label_change(1), bad])
    with pytest.raises(InvalidChange, match=r"RECEIPT_WORD_LABEL\.changes\.colour"):
        producers.enqueue([{**label_change(1), "changes": {"colour": {"new": "red"}}}])
    with pytest.raises(InvalidChange, match="CHROMASYNC_COLLECTIONS"):
        producers.enqueue([label_change(1)], collection="lnes")
    assert queues.all_tasks() == {"lines": [], "words": []}


@pytest.mark.slow
def test_enqueue_reports_what_was_not_sent(
    producer_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CELERY_BROKER_URL", f"sqs://testing:testing@127.0.0.1:{free_port()}")
    with pytest.raises(PublishFailed, match="127.0.0.1") as caught:
        producers.enqueue([label_change(1), label_change(2)])
    assert isinstance(caught.value, EnqueueError) and isinstance(caught.value, PublishError)
    assert caught.value.published == [] and caught.value.unsent_changes == 4


#: Inputs that are not a list of valid changes, with what the error must say.
NOT_CHANGES: list[tuple[Any, str]] = [
    (None, "must be a list of changes .*got NoneType"),
    (42, "got int"),
    ("RECEIPT_LINE", "got str"),
    (label_change(1), "got one change: pass \\[change\\]"),
    ([None], "change 0 does not fit the contract"),
    ([label_change(1), "x"], "change 1 does not fit the contract"),
    ([{**label_change(1), "keys": None}], "change 0 does not fit the contract"),
]


@pytest.mark.parametrize(("changes", "message"), NOT_CHANGES)
def test_input_that_is_not_changes_is_an_invalid_change(
    producer_env: dict[str, str], changes: Any, message: str
) -> None:
    queues = Queues(Settings.from_env())
    with pytest.raises(InvalidChange, match=message) as caught:
        producers.enqueue(changes)
    assert isinstance(caught.value, EnqueueError) and isinstance(caught.value, ValueError)
    assert caught.value.published == []
    assert queues.all_tasks() == {"lines": [], "words": []}


def test_a_change_too_large_for_one_message_is_an_invalid_change(
    producer_env: dict[str, str],
) -> None:
    queues = Queues(Settings.from_env())
    huge = {**label_change(2), "keys": {**label_change(2)["keys"], "image_id": "x" * 150_000}}
    with pytest.raises(ChangeTooLarge, match=r"change 1: .* bytes even without") as caught:
        producers.enqueue([label_change(1), huge])
    assert isinstance(caught.value, InvalidChange) and isinstance(caught.value, EnqueueError)
    assert queues.all_tasks() == {"lines": [], "words": []}


def test_a_wrong_setting_is_not_configured(
    producer_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CHROMASYNC_FIFO", "maybe")
    with pytest.raises(NotConfigured, match="CHROMASYNC_FIFO") as caught:
        producers.enqueue([label_change(1)])
    assert isinstance(caught.value, EnqueueError) and isinstance(caught.value, ConfigError)
    with pytest.raises(NotConfigured, match="CHROMASYNC_FIFO"):
        producers.enqueue_records([line_record("INSERT", 1)])


def test_a_missing_queue_is_not_deployed_and_says_what_was_sent(
    producer_env: dict[str, str],
) -> None:
    settings = Settings.from_env()
    queues = Queues(settings)
    words = settings.sqs_queue_name("words")
    queues.sqs.delete_queue(QueueUrl=queues.url(words))
    line = {
        "entity_type": "RECEIPT_LINE",
        "event_name": "MODIFY",
        "keys": {"image_id": IMAGE, "receipt_id": 1, "line_id": 2},
        "sequence_number": "7",
        "event_id": "svc-line",
    }
    word = {**line, "entity_type": "RECEIPT_WORD", "event_id": "svc-word"}
    word["keys"] = {**line["keys"], "word_id": 3}
    # Batches go out per collection in the order their changes came: lines, then words.
    with pytest.raises(NotDeployed, match=repr(words)) as caught:
        producers.enqueue([line, word])
    error = caught.value
    assert isinstance(error, EnqueueError) and isinstance(error, DeploymentError)
    assert isinstance(error.__cause__, MissingResource)
    assert [p.collection for p in error.published] == ["lines"] and error.unsent_changes == 1
    assert changes_on(queues, "lines") == [("chromasync.api", "svc-line")]
    with pytest.raises(NotDeployed, match=repr(words)) as from_records:
        producers.enqueue_records([line_record("INSERT", 1), record_of_word()])
    assert from_records.value.unsent_changes is None


def record_of_word() -> dict[str, Any]:
    """A stream record of a word INSERT (routed to the words collection only)."""
    sk = "RECEIPT#00001#LINE#00002#WORD#00003"
    return record("INSERT", f"IMAGE#{IMAGE}", sk, 2, new={"text": "w"})


def test_enqueue_records_refuses_what_is_not_a_list_of_records(
    producer_env: dict[str, str],
) -> None:
    for records in (None, {"Records": []}, "x"):
        with pytest.raises(InvalidChange, match="must be a list of stream records"):
            producers.enqueue_records(records)  # type: ignore[arg-type]


def test_the_family_is_exported_from_producers() -> None:
    for name in ("InvalidChange", "ChangeTooLarge", "NotConfigured", "NotDeployed"):
        assert issubclass(getattr(producers, name), producers.EnqueueError)
    assert issubclass(producers.PublishFailed, producers.EnqueueError)
    assert issubclass(producers.PublishFailed, producers.PublishError)
    assert set(producers.__all__) >= {"EnqueueError", "PublishFailed", "enqueue"}


def test_enqueue_records_takes_raw_stream_records(producer_env: dict[str, str]) -> None:
    queues = Queues(Settings.from_env())
    report = producers.enqueue_records([line_record("INSERT", 1), {"not": "a record"}])
    assert (report.changes, len(report.malformed), report.quarantined) == (1, 1, 1)
    assert [c.sequence_int for t in queues.tasks("lines") for c in t.batch.changes] == [1]
    assert queues.quarantined()[0]["source"] == "api"


def test_the_documented_payload_sent_with_celery_alone(producer_env: dict[str, str]) -> None:
    """The README's example, sent by an app that knows nothing of chromasync but its broker."""
    contract = README.read_text().split("## The message contract", 1)[1]
    example = re.search(r"```json\n(.*?)```", contract, re.S)
    assert example, "README has no JSON payload example under 'The message contract'"
    payload = json.loads(example.group(1))
    ChangeBatch.model_validate(payload)
    settings = Settings.from_env()
    queues = Queues(settings)
    app = Celery("another-service", set_as_current=False)
    app.conf.update(
        broker_url=f"sqs://testing:testing@{producer_env['AWS_ENDPOINT_URL'][7:]}",
        broker_transport_options={
            "region": "us-east-1",
            "is_secure": False,
            "queue_name_prefix": settings.queue_prefix,
        },
        task_serializer="json",
    )
    app.send_task("chromasync.apply_changes", args=[payload], queue="words")
    (task,) = queues.tasks("words")
    assert task.batch.model_dump(mode="json") == ChangeBatch.model_validate(payload).model_dump(
        mode="json"
    )
