"""The Lambda entry point: batchItemFailures, quarantine, one build per container, light import."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest
from celery.signals import after_task_publish

from chromasync.core.config import ConfigError, Settings
from chromasync.local import MotoServer, free_port
from producers import lambda_handler
from tests.producing import Queues, line_record, record


def event(*records: Any) -> dict[str, Any]:
    return {"Records": list(records)}


def seq(raw: dict[str, Any]) -> str:
    return str(raw["dynamodb"]["SequenceNumber"])


def failures(response: dict[str, Any]) -> list[str]:
    return [item["itemIdentifier"] for item in response["batchItemFailures"]]


class Context:
    aws_request_id = "req-123"


def test_lambda_event_with_null_old_image_is_published(
    producer_env: dict[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    queues = Queues(Settings.from_env())
    raw = line_record("INSERT", 5)
    assert raw["dynamodb"]["OldImage"] is None
    with caplog.at_level(logging.INFO, logger="producers.lambda_handler"):
        response = lambda_handler.handler(event(raw), Context())
    assert response == {"batchItemFailures": []}
    (task,) = queues.tasks("lines")
    (change,) = task.batch.changes
    assert (change.event_name, change.sequence_number) == ("INSERT", seq(raw))
    assert change.changes["text"] == {"old": None, "new": "line 1 v5"}
    # One summary line per invocation.
    summaries = [r.getMessage() for r in caplog.records if "chromasync lambda:" in r.getMessage()]
    assert len(summaries) == 1
    assert "1 records, 1 changes, 1 tasks sent" in summaries[0]
    assert "request req-123" in summaries[0]


def test_ignored_and_malformed_records_do_not_block_the_shard(
    producer_env: dict[str, str],
) -> None:
    queues = Queues(Settings.from_env())
    broken = line_record("INSERT", 2)
    broken["dynamodb"]["NewImage"]["text"] = {"S": 5}
    no_sequence = line_record("INSERT", 3)
    del no_sequence["dynamodb"]["SequenceNumber"]
    records = [
        record("INSERT", "USER#1", "PROFILE", 1, new={"a": 1}),
        broken,
        no_sequence,
        line_record("INSERT", 4, line=4),
    ]
    response = lambda_handler.handler(event(*records), Context())
    assert response == {"batchItemFailures": []}
    assert [c.sequence_int for t in queues.tasks("lines") for c in t.batch.changes] == [4]
    kept = queues.quarantined()
    assert [(m["record"], m["source"]) for m in kept] == [
        (broken, "lambda"),
        (no_sequence, "lambda"),
    ]
    assert "S value must be a string" in kept[0]["error"]
    assert "SequenceNumber" in kept[1]["error"]


@pytest.mark.slow
def test_a_dead_broker_reports_the_first_unpublished_record_and_every_later_one(
    producer_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # SQS for the quarantine works; the Celery broker points at a closed port.
    monkeypatch.setenv("CELERY_BROKER_URL", f"sqs://testing:testing@127.0.0.1:{free_port()}")
    queues = Queues(Settings.from_env())
    malformed = line_record("INSERT", 2)
    malformed["dynamodb"]["Keys"] = {}
    records = [
        record("INSERT", "USER#1", "PROFILE", 1, new={"a": 1}),
        malformed,
        line_record("INSERT", 3),
        record("INSERT", "USER#2", "PROFILE", 4, new={"a": 1}),
        line_record("INSERT", 5, line=2),
    ]
    response = lambda_handler.handler(event(*records), Context())
    assert failures(response) == [seq(r) for r in records[2:]]
    # The malformed record before the failure was kept, so it is not reported.
    assert [m["record"] for m in queues.quarantined()] == [malformed]


@pytest.fixture
def second_moto() -> Iterator[MotoServer]:
    server = MotoServer.start()
    yield server
    server.stop()


@pytest.mark.slow
def test_a_broker_lost_mid_batch_reports_from_the_first_unsent_record(
    producer_env: dict[str, str], monkeypatch: pytest.MonkeyPatch, second_moto: MotoServer
) -> None:
    """The broker (a moto server of its own) stops after the first task went out."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", second_moto.url)
    monkeypatch.setenv("CHROMASYNC_MAX_CHANGES_PER_TASK", "2")
    Queues(Settings.from_env())
    records = [line_record("INSERT", s, line=s) for s in range(1, 7)]
    sent: list[str] = []

    def stop_broker_after_first(sender: str | None = None, **_: Any) -> None:
        sent.append(str(sender))
        if len(sent) == 1:
            second_moto.stop()

    after_task_publish.connect(stop_broker_after_first, weak=False)
    try:
        response = lambda_handler.handler(event(*records), Context())
    finally:
        after_task_publish.disconnect(stop_broker_after_first)
    assert sent == ["chromasync.apply_changes"]
    # Records 1 and 2 went out in the first task; 3..6 are reported, in order.
    assert failures(response) == [seq(r) for r in records[2:]]


def test_an_unreportable_failure_fails_the_whole_batch(
    producer_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """No SequenceNumber and no quarantine: raising is the only way not to lose the record."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{free_port()}")
    no_sequence = line_record("INSERT", 1)
    del no_sequence["dynamodb"]["SequenceNumber"]
    with pytest.raises(lambda_handler.UnreportableFailure, match="no SequenceNumber"):
        lambda_handler.handler(event(no_sequence), Context())
    # With a sequence number the same failure is reported, with every later record.
    lambda_handler.processor().publisher.attempts = 1
    broken = line_record("INSERT", 2)
    broken["dynamodb"]["Keys"] = {}
    response = lambda_handler.handler(event(broken, line_record("INSERT", 3)), Context())
    assert failures(response) == [seq(broken), f"{3:021d}"]


def test_a_wrong_setting_fails_the_invocation_naming_the_variable(
    producer_env: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setenv("CHROMASYNC_MAX_CHANGES_PER_TASK", "lots")
    with pytest.raises(ConfigError, match="CHROMASYNC_MAX_CHANGES_PER_TASK"):
        lambda_handler.handler(event(line_record("INSERT", 1)), Context())
    assert any("configuration error" in r.getMessage() for r in caplog.records)


def test_not_a_stream_event_is_refused() -> None:
    with pytest.raises(ValueError, match="'Records'"):
        lambda_handler.handler({"detail": {}}, Context())


def test_the_pipeline_is_built_once_per_container(
    producer_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = Settings.from_env()
    queues = Queues(settings)
    lambda_handler.handler(event(line_record("INSERT", 1)), Context())
    # A new environment is not read again by a warm container: same queues as before.
    monkeypatch.setenv("CHROMASYNC_QUEUE_PREFIX", "elsewhere-")
    lambda_handler.handler(event(line_record("INSERT", 2)), Context())
    assert [c.sequence_int for t in queues.tasks("lines") for c in t.batch.changes] == [1, 2]


@pytest.mark.slow
def test_importing_the_handler_stays_light(producer_env: dict[str, str]) -> None:
    """A Lambda zip has neither chromadb nor the worker code; the handler must not need them."""
    Queues(Settings.from_env())
    script = """
import json, sys
def heavy():
    return [m for m in sys.modules if m.split(".")[0] in ("chromadb", "tasks")]
import producers.lambda_handler as h
loaded = heavy()
response = h.handler(json.load(sys.stdin), None)
print(json.dumps({"import": loaded, "after": heavy(), "response": response}))
"""
    out = subprocess.run(
        [sys.executable, "-c", script],
        input=json.dumps(event(line_record("INSERT", 1))),
        env=producer_env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result == {"import": [], "after": [], "response": {"batchItemFailures": []}}


def test_records_of_other_images_and_shapes_in_one_event(producer_env: dict[str, str]) -> None:
    """GetRecords-shaped records (datetime, bytes) are accepted too, e.g. from a test harness."""
    from datetime import UTC, datetime

    queues = Queues(Settings.from_env())
    raw = line_record("MODIFY", 7, image="other-image")
    raw["dynamodb"]["ApproximateCreationDateTime"] = datetime(2026, 1, 1, tzinfo=UTC)
    raw["dynamodb"]["NewImage"]["blob"] = {"B": b"\x00\x01"}
    response = lambda_handler.handler(event(raw), Context())
    assert response == {"batchItemFailures": []}
    (task,) = queues.tasks("lines")
    assert task.batch.changes[0].keys.image_id == "other-image"
    assert task.batch.changes[0].changes["text"]["new"] is not None
