"""Routing to more than one sink: ``CHROMASYNC_SINKS``, each entity's targets, real SQS queues.

The Chroma routes must be exactly those of Chroma alone (tests/test_producers.py); the
dashboard takes what :data:`chromasync.core.sinks.SINKS` says it watches, and a change
that only the dashboard watches goes to its queue alone.
"""

from __future__ import annotations

from typing import Any

import pytest

from chromasync.core.config import ConfigError, Settings, UnknownCollection
from chromasync.core.contract import Change
from chromasync.core.keys import image_pk, receipt_sk
from chromasync.core.routing import all_targets_of, routes_of
from producers.api import enqueue
from producers.publishing import Publisher
from tests.producing import IMAGE, Queues, record
from tests.test_producers import ENTITIES, EXPECTED, entity_record, processor_for, queued

SINKS_ENV = {"CHROMASYNC_SINKS": "chroma,dashboard"}

#: What the dashboard takes on top of Chroma's queues, per (entity, event) of
#: tests/test_producers.ENTITIES (their MODIFYs change the fields named there).
DASHBOARD_TAKES = {
    **{("RECEIPT_METADATA", e): True for e in ("INSERT", "MODIFY", "REMOVE")},
    **{("RECEIPT_WORD_LABEL", e): True for e in ("INSERT", "MODIFY", "REMOVE")},
    ("RECEIPT_LINE", "INSERT"): True,
    ("RECEIPT_LINE", "MODIFY"): False,  # the dashboard counts lines; their text is not its
    ("RECEIPT_LINE", "REMOVE"): True,
    **{("RECEIPT_WORD", e): True for e in ("INSERT", "MODIFY", "REMOVE")},
    ("RECEIPT", "INSERT"): True,
    ("RECEIPT", "MODIFY"): False,  # width changed; the dashboard watches timestamp_added
    ("RECEIPT", "REMOVE"): True,
    **{("COMPACTION_RUN", e): False for e in ("INSERT", "MODIFY", "REMOVE")},
}


def settings_with(**env: str) -> Settings:
    return Settings.from_env({**env})


def test_chroma_alone_is_the_default_and_targets_are_the_collections() -> None:
    settings = settings_with()
    assert settings.sinks == ("chroma",)
    assert settings.targets == ("lines", "words")
    assert settings.sink_of("words") == "chroma"
    with pytest.raises(UnknownCollection, match="dashboard"):
        settings.sink_of("dashboard")


def test_the_dashboard_is_a_target_with_its_own_queue() -> None:
    settings = settings_with(CHROMASYNC_SINKS="dashboard , chroma")
    assert settings.sinks == ("chroma", "dashboard")
    assert settings.targets == ("lines", "words", "dashboard")
    assert settings.sink_of("dashboard") == "dashboard"
    assert settings.sqs_queue_name("dashboard") == "chromasync-dashboard"
    assert settings.dlq_name("dashboard") == "chromasync-dashboard-dlq"
    assert settings.select_targets("dashboard") == ["dashboard"]
    with pytest.raises(
        ConfigError,
        match="unknown collection 'nope'; CHROMASYNC_COLLECTIONS names "
        "\\['lines', 'words'\\] and CHROMASYNC_SINKS adds",
    ):
        settings.select_targets("nope")


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("chroma,opensearch", "unknown sinks \\['opensearch'\\]"),
        ("dashboard", "must include 'chroma'"),
        ("chroma,dashboard,chroma", "names a sink twice"),
    ],
)
def test_wrong_sinks_are_refused_naming_the_variable(raw: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as caught:
        settings_with(CHROMASYNC_SINKS=raw)
    assert "CHROMASYNC_SINKS" in str(caught.value)


def test_a_collection_may_not_take_a_sinks_queue() -> None:
    with pytest.raises(ConfigError, match="also a sink's queue"):
        settings_with(CHROMASYNC_SINKS="chroma,dashboard", CHROMASYNC_COLLECTIONS="lines,dashboard")


def test_chroma_routes_do_not_change_when_the_dashboard_is_on() -> None:
    alone, both = settings_with(), settings_with(**SINKS_ENV)
    for entity in ENTITIES:
        assert routes_of(both, entity)[0] == routes_of(alone, entity)[0]
        assert len(routes_of(alone, entity)) == 1
    assert all_targets_of(both, "COMPACTION_RUN") == ("lines", "words")
    assert all_targets_of(both, "RECEIPT_LINE") == ("lines", "dashboard")


@pytest.mark.parametrize(("entity", "event"), sorted(EXPECTED))
def test_every_entity_and_event_reaches_chroma_and_the_dashboard(
    producer_env: dict[str, str], monkeypatch: pytest.MonkeyPatch, entity: str, event: str
) -> None:
    monkeypatch.setenv("CHROMASYNC_SINKS", "chroma,dashboard")
    settings = Settings.from_env()
    queues = Queues(settings)
    report = processor_for(settings).process([entity_record(entity, event, seq=7)])
    chroma = EXPECTED[(entity, event)]
    expected = [] if isinstance(chroma, str) else list(chroma)
    if DASHBOARD_TAKES[(entity, event)]:
        expected.append("dashboard")
    tasks = queues.all_tasks()
    assert queued(tasks) == sorted(expected)
    if not expected:
        assert report.changes == 0 and sum(report.ignored.values()) == 1
        return
    assert report.changes == 1
    for target in expected:
        (task,) = tasks[target]
        assert task.batch.collection == target
        (change,) = task.batch.changes
        assert (change.entity_type, change.event_name, change.sequence_number) == (
            entity,
            event,
            f"{7:021d}",
        )


def test_a_receipt_date_change_goes_to_the_dashboard_alone(
    producer_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CHROMASYNC_SINKS", "chroma,dashboard")
    settings = Settings.from_env()
    queues = Queues(settings)
    moved: dict[str, Any] = {"timestamp_added": "2026-02-01T00:00:00+00:00"}
    was: dict[str, Any] = {"timestamp_added": "2026-01-01T00:00:00+00:00"}
    report = processor_for(settings).process(
        [record("MODIFY", image_pk(IMAGE), receipt_sk(1), 9, new=moved, old=was)]
    )
    tasks = queues.all_tasks()
    assert report.changes == 1 and queued(tasks) == ["dashboard"]
    (change,) = tasks["dashboard"][0].batch.changes
    # The informational field changes are the registry's (RECEIPT monitors none).
    assert (change.entity_type, change.event_name, change.changes) == ("RECEIPT", "MODIFY", {})


def test_the_enqueue_api_routes_to_every_target_that_takes_the_entity(
    producer_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CHROMASYNC_SINKS", "chroma,dashboard")
    settings = Settings.from_env()
    queues = Queues(settings)
    change = Change(
        entity_type="RECEIPT_WORD",
        event_name="MODIFY",
        keys={"image_id": IMAGE, "receipt_id": 1, "line_id": 2, "word_id": 3},  # type: ignore[arg-type]
        sequence_number="12",
        event_id="api-1",
    )
    enqueue([change], publisher=Publisher(settings))
    assert queued(queues.all_tasks()) == ["dashboard", "words"]
    enqueue([change], collection="dashboard", publisher=Publisher(settings))
    assert queued(queues.all_tasks()) == ["dashboard"]
