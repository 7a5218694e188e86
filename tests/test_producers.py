"""Stream records → tasks on the right queues, through a real Publisher to moto SQS.

Every task is read back from SQS and decoded as a worker would see it
(tests/producing.py), so these tests check what actually went out: which
queue, how many tasks, which changes, how big, in which order.
"""

from __future__ import annotations

import hashlib
import time
from typing import Any

import pytest

from chromasync.core.config import ConfigError, Settings
from chromasync.core.contract import Change, ChangeBatch
from chromasync.core.groups import receipt_group
from chromasync.core.keys import image_pk, line_sk, receipt_sk, word_sk
from chromasync.local import free_port
from producers.packing import MAX_PAYLOAD_BYTES
from producers.pipeline import StreamProcessor
from producers.publishing import Publisher, PublishError
from tests.producing import (
    IMAGE,
    Queues,
    TaskMessage,
    label_sk,
    line_record,
    metadata_sk,
    record,
)

#: The largest SQS message we allow (the queues are created with it).
SQS_LIMIT = 262_144

#: Per entity: SK, fields before and after a MODIFY, and the keys of its change.
ENTITIES: dict[str, tuple[str, dict[str, Any], dict[str, Any], dict[str, Any]]] = {
    "RECEIPT_METADATA": (
        metadata_sk(1),
        {"merchant_name": "Old Shop", "phone_number": "1"},
        {"merchant_name": "New Shop", "phone_number": "1"},
        {"image_id": IMAGE, "receipt_id": 1},
    ),
    "RECEIPT_WORD_LABEL": (
        label_sk(1, 2, 3, "TOTAL"),
        {"label": "TOTAL", "validation_status": "PENDING"},
        {"label": "TOTAL", "validation_status": "VALID"},
        {"image_id": IMAGE, "receipt_id": 1, "line_id": 2, "word_id": 3, "label": "TOTAL"},
    ),
    "RECEIPT_LINE": (
        line_sk(1, 2),
        {"text": "TOTAL 12.00", "confidence": 0.9},
        {"text": "TOTAL 13.00", "confidence": 0.9},
        {"image_id": IMAGE, "receipt_id": 1, "line_id": 2},
    ),
    "RECEIPT_WORD": (
        word_sk(1, 2, 3),
        {"text": "12.00", "is_noise": False},
        {"text": "13.00", "is_noise": False},
        {"image_id": IMAGE, "receipt_id": 1, "line_id": 2, "word_id": 3},
    ),
    "RECEIPT": (
        receipt_sk(1),
        {"width": 100},
        {"width": 200},
        {"image_id": IMAGE, "receipt_id": 1},
    ),
    "COMPACTION_RUN": (
        f"{receipt_sk(1)}#COMPACTION_RUN#run-7",
        {"lines_delta_prefix": "s3://b/l/", "words_delta_prefix": "s3://b/w/"},
        {
            "lines_delta_prefix": "s3://b/l/",
            "words_delta_prefix": "s3://b/w/",
            "lines_state": "done",
        },
        {"image_id": IMAGE, "receipt_id": 1, "run_id": "run-7"},
    ),
}

BOTH = ("lines", "words")
#: Queues each (entity, event) must reach, or the reason it is ignored.
EXPECTED: dict[tuple[str, str], tuple[str, ...] | str] = {
    **{("RECEIPT_METADATA", e): BOTH for e in ("INSERT", "MODIFY", "REMOVE")},
    **{("RECEIPT_WORD_LABEL", e): BOTH for e in ("INSERT", "MODIFY", "REMOVE")},
    **{("RECEIPT_LINE", e): ("lines",) for e in ("INSERT", "MODIFY", "REMOVE")},
    **{("RECEIPT_WORD", e): ("words",) for e in ("INSERT", "MODIFY", "REMOVE")},
    ("RECEIPT", "INSERT"): "event_not_relevant",
    ("RECEIPT", "MODIFY"): "event_not_relevant",
    ("RECEIPT", "REMOVE"): BOTH,
    ("COMPACTION_RUN", "INSERT"): BOTH,
    ("COMPACTION_RUN", "MODIFY"): "event_not_relevant",
    ("COMPACTION_RUN", "REMOVE"): "event_not_relevant",
}

FLAGS = {
    "RECEIPT_METADATA": "ENABLE_METADATA_UPDATES",
    "RECEIPT_WORD_LABEL": "ENABLE_LABEL_UPDATES",
    "RECEIPT_LINE": "ENABLE_LINE_UPDATES",
    "RECEIPT_WORD": "ENABLE_WORD_UPDATES",
    "RECEIPT": "ENABLE_RECEIPT_DELETES",
    "COMPACTION_RUN": "ENABLE_COMPACTION_RUNS",
}
#: An event of each entity that does produce a change.
ACTIVE_EVENT = {e: ("REMOVE" if e == "RECEIPT" else "INSERT") for e in ENTITIES}


def entity_record(entity: str, event: str, seq: int) -> dict[str, Any]:
    sk, before, after, _keys = ENTITIES[entity]
    return record(
        event,
        image_pk(IMAGE),
        sk,
        seq,
        new=None if event == "REMOVE" else after,
        old=None if event == "INSERT" else before,
    )


def processor_for(settings: Settings, **publisher: Any) -> StreamProcessor:
    return StreamProcessor(settings, Publisher(settings, **publisher), source="test")


def queued(tasks: dict[str, list[TaskMessage]]) -> list[str]:
    return sorted(c for c, messages in tasks.items() for _ in messages)


@pytest.mark.parametrize(("entity", "event"), sorted(EXPECTED))
def test_every_entity_and_event_reaches_the_right_queues(
    producer_env: dict[str, str], entity: str, event: str
) -> None:
    settings = Settings.from_env()
    queues = Queues(settings)
    report = processor_for(settings).process([entity_record(entity, event, seq=7)])
    tasks = queues.all_tasks()
    expected = EXPECTED[(entity, event)]
    if isinstance(expected, str):
        assert (report.changes, dict(report.ignored), queued(tasks)) == (0, {expected: 1}, [])
        return
    assert report.changes == 1 and not report.ignored and report.failed_from is None
    assert queued(tasks) == sorted(expected)
    _sk, before, after, keys = ENTITIES[entity]
    for collection in expected:
        (task,) = tasks[collection]
        assert task.batch.collection == collection
        (change,) = task.batch.changes
        assert (change.entity_type, change.event_name) == (entity, event)
        assert change.keys.model_dump(exclude_none=True) == keys
        assert (change.sequence_number, change.event_id) == (f"{7:021d}", "event-7")
        assert change.approximate_creation_time == 1763700007.0
        if event == "MODIFY" and entity not in ("RECEIPT", "COMPACTION_RUN"):
            changed = {f for f in after if before.get(f) != after.get(f)}
            assert set(change.changes) == changed
            for name in changed:
                assert (change.changes[name]["old"], change.changes[name]["new"]) == (
                    before[name],
                    after[name],
                )
        assert change.new_image is None  # the worker reads the table; images are not sent


def test_modify_without_a_monitored_change_sends_nothing(producer_env: dict[str, str]) -> None:
    settings = Settings.from_env()
    queues = Queues(settings)
    box = {"x": 0.1, "y": 0.2, "width": 0.5, "height": 0.05}
    reordered = {"height": 0.05, "width": 0.5, "y": 0.2, "x": 0.1}
    before = {"text": "TOTAL", "bounding_box": box, "updated_at": "2026-01-01"}
    same = {"text": "TOTAL", "bounding_box": reordered, "updated_at": "2026-02-02"}
    moved = {**same, "bounding_box": {**box, "x": 0.11}}
    pk, sk = image_pk(IMAGE), line_sk(1, 1)
    label_before = {"label": "TOTAL", "label_consolidated_from": ["a", "b"], "reasoning": "r"}
    label_same = {**label_before, "label_proposed_by": None}
    records = [
        # Only an unmonitored field and the order of a map's keys differ: no task.
        record("MODIFY", pk, sk, 1, old=before, new=same),
        # Equal lists and strings: no task.
        record("MODIFY", pk, label_sk(1, 1, 1, "TOTAL"), 2, old=label_before, new=label_before),
        # A monitored field that appears (even as null) is a change.
        record("MODIFY", pk, label_sk(1, 1, 1, "TOTAL"), 3, old=label_before, new=label_same),
        # A value inside the map differs: a change.
        record("MODIFY", pk, sk, 4, old=before, new=moved),
    ]
    report = processor_for(settings).process(records)
    assert report.ignored == {"no_monitored_change": 2}
    assert report.changes == 2
    tasks = queues.all_tasks()
    lines = [c for t in tasks["lines"] for c in t.batch.changes]
    assert [(c.sequence_int, sorted(c.changes)) for c in lines] == [
        (3, ["label_proposed_by"]),
        (4, ["bounding_box"]),
    ]
    # Exact decimals travel as strings (json_safe), never as floats.
    assert lines[1].changes["bounding_box"]["new"]["x"] == "0.11"


@pytest.mark.parametrize("entity", sorted(FLAGS))
def test_a_feature_flag_turns_off_its_entity_only(
    producer_env: dict[str, str], monkeypatch: pytest.MonkeyPatch, entity: str
) -> None:
    monkeypatch.setenv(FLAGS[entity], "false")
    settings = Settings.from_env()
    queues = Queues(settings)
    records = [entity_record(e, ACTIVE_EVENT[e], seq=i + 1) for i, e in enumerate(sorted(FLAGS))]
    report = processor_for(settings).process(records)
    assert report.ignored == {"disabled_by_flag": 1}
    assert report.changes == len(FLAGS) - 1
    tasks = queues.all_tasks().values()
    sent = {c.entity_type for ts in tasks for t in ts for c in t.batch.changes}
    assert sent == set(FLAGS) - {entity}


def test_records_that_are_not_our_entities_are_ignored_and_counted(
    producer_env: dict[str, str],
) -> None:
    settings = Settings.from_env()
    queues = Queues(settings)
    other_table = line_record("INSERT", 9)
    other_table["dynamodb"]["Keys"] = {"id": {"S": "order-1"}, "version": {"N": "3"}}
    records = [
        record("INSERT", "USER#42", "PROFILE", 1, new={"name": "x"}),
        record("INSERT", image_pk(IMAGE), "IMAGE", 2, new={"width": 1}),
        record("INSERT", image_pk(IMAGE), "LINE#00001", 3, new={"text": "x"}),
        record("INSERT", image_pk(IMAGE), f"{receipt_sk(1)}#SECTION#TOTAL", 4, new={"a": 1}),
        record("INSERT", image_pk(IMAGE), f"{word_sk(1, 1, 1)}#LETTER#00001", 5, new={"a": 1}),
        record("INSERT", "RECEIPT#00001", line_sk(1, 1), 6, new={"text": "x"}),
        other_table,
        line_record("INSERT", 10),
    ]
    report = processor_for(settings).process(records)
    assert report.ignored == {"not_an_entity": 7}
    assert report.changes == 1 and not report.malformed and report.failed_from is None
    assert queued(queues.all_tasks()) == ["lines"]
    assert queues.quarantined() == []


def _malformed_cases() -> list[tuple[dict[str, Any] | str, str]]:
    pk = image_pk(IMAGE)
    no_keys = line_record("INSERT", 1)
    del no_keys["dynamodb"]["Keys"]
    numeric_pk = line_record("INSERT", 2)
    numeric_pk["dynamodb"]["Keys"]["PK"] = {"N": "5"}
    wrong_type = line_record("INSERT", 3)
    wrong_type["dynamodb"]["NewImage"]["text"] = {"S": 5}
    bad_number = line_record("MODIFY", 4)
    bad_number["dynamodb"]["NewImage"]["confidence"] = {"N": "high"}
    bad_event = line_record("INSERT", 5)
    bad_event["eventName"] = "UPSERT"
    long_id = line_record("INSERT", 10)
    long_id["eventID"] = "e" * 300
    huge_number = line_record("MODIFY", 11)
    huge_number["dynamodb"]["NewImage"]["confidence"] = {"N": "1E+5000"}
    return [
        (no_keys, "Keys is missing"),
        (numeric_pk, "PK must be a string"),
        (wrong_type, "S value must be a string"),
        (bad_number, "is not a number"),
        (bad_event, "eventName"),
        (record("INSERT", pk, "RECEIPT#00abc#LINE#00001", 6, new={"text": "x"}), "RECEIPT_LINE"),
        (record("INSERT", pk, "RECEIPT#1#METADATA", 7, new={"a": 1}), "RECEIPT_METADATA"),
        (record("INSERT", pk, f"{word_sk(1, 1, 1)}#LABEL#", 8, new={"a": 1}), "WORD_LABEL"),
        (record("INSERT", pk, "RECEIPT#00001#LINE#1", 9, new={"text": "x"}), "not readable"),
        ("not a record", "must be an object"),
        (long_id, "event_id"),
        (huge_number, "outside DynamoDB's range"),
    ]


def test_malformed_records_are_quarantined_with_their_error(producer_env: dict[str, str]) -> None:
    settings = Settings.from_env()
    queues = Queues(settings)
    cases = _malformed_cases()
    records: list[Any] = [line_record("INSERT", 100)] + [raw for raw, _ in cases]
    records.append(line_record("INSERT", 101, line=2))
    report = processor_for(settings).process(records)
    assert [m.index for m in report.malformed] == list(range(1, len(cases) + 1))
    assert report.quarantined == len(cases)
    assert report.failed_from is None and report.changes == 2
    # The good records on either side were published: malformed ones do not block.
    (task,) = queues.tasks("lines")
    assert [c.sequence_int for c in task.batch.changes] == [100, 101]
    kept = queues.quarantined()
    assert len(kept) == len(cases)
    for message, (raw, fragment) in zip(kept, cases, strict=True):
        assert fragment in message["error"]
        assert message["record"] == raw and message["source"] == "test"


def test_more_than_ten_records_pack_into_few_tasks(
    producer_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = Settings.from_env()
    queues = Queues(settings)
    pk = image_pk(IMAGE)
    labels = [
        record("INSERT", pk, label_sk(1, 1, w, "TOTAL"), w, new={"label": "TOTAL"})
        for w in range(1, 26)
    ]
    processor_for(settings).process(labels)
    # Default cap (500): one task per collection for all 25.
    tasks = queues.all_tasks()
    assert [len(t.batch.changes) for t in tasks["words"]] == [25]
    assert [len(t.batch.changes) for t in tasks["lines"]] == [25]

    monkeypatch.setenv("CHROMASYNC_MAX_CHANGES_PER_TASK", "4")
    capped = Settings.from_env()
    words = [
        record("INSERT", pk, word_sk(1, 1, w), 100 + w, new={"text": str(w)}) for w in range(25)
    ]
    report = processor_for(capped).process(words)
    tasks = queues.all_tasks()
    assert tasks["lines"] == []
    assert [len(t.batch.changes) for t in tasks["words"]] == [4, 4, 4, 4, 4, 4, 1]
    assert [c.sequence_int for t in tasks["words"] for c in t.batch.changes] == [
        100 + w for w in range(25)
    ]
    assert report.tasks_sent == 7


def test_batches_over_256_kib_split_under_the_sqs_limit_in_order(
    producer_env: dict[str, str],
) -> None:
    settings = Settings.from_env()
    queues = Queues(settings)
    pk = image_pk(IMAGE)
    records = []
    # About 33 KB per change as JSON (old and new reasoning; each é is escaped to six
    # bytes): five make a payload of 165 KB, which base64 twice over would be a 295 KB
    # message; four (131 KB, a 234 KB message) is as many as fit.
    for seq in range(1, 25):
        receipt, word = 1 + seq % 3, seq
        before = {"label": "TOTAL", "reasoning": f"{seq} before " + "r" * 15_000}
        after = {"label": "TOTAL", "reasoning": f"{seq} after " + "é" * 1_000 + "s" * 11_500}
        records.append(
            record("MODIFY", pk, label_sk(receipt, 1, word, "TOTAL"), seq, old=before, new=after)
        )
    # One MODIFY of a 150 KB reasoning: too big for a message even without its image.
    huge_before = {"label": "TOTAL", "reasoning": "b" * 150_000}
    huge_after = {"label": "TOTAL", "reasoning": "a" * 150_000}
    records.append(
        record("MODIFY", pk, label_sk(2, 1, 99, "TOTAL"), 25, old=huge_before, new=huge_after)
    )
    for collection in settings.collections:
        attributes = queues.sqs.get_queue_attributes(
            QueueUrl=queues.url(settings.sqs_queue_name(collection)),
            AttributeNames=["MaximumMessageSize"],
        )["Attributes"]
        assert attributes["MaximumMessageSize"] == str(SQS_LIMIT)  # moto refuses bigger ones
    report = processor_for(settings).process(records)
    assert report.failed_from is None and not report.malformed and report.changes == 25
    by_id = {}
    for collection, tasks in queues.all_tasks().items():
        assert len(tasks) == 6, f"{collection}: {len(tasks)} tasks"
        for task in tasks:
            assert task.body_bytes < SQS_LIMIT
            assert len(task.batch.model_dump_json()) <= MAX_PAYLOAD_BYTES + 1_000
            by_id[task.batch.batch_id] = task.batch
    for collection in settings.collections:
        # In the order they were published: every change once, stream order per receipt.
        sent = [by_id[p.batch_id] for p in report.published if p.collection == collection]
        changes = [c for batch in sent for c in batch.changes]
        assert sorted(c.sequence_int for c in changes) == list(range(1, 26))
        per_receipt: dict[int, list[int]] = {}
        for change in changes:
            per_receipt.setdefault(change.keys.receipt_id, []).append(change.sequence_int)
        assert all(seqs == sorted(seqs) for seqs in per_receipt.values())
        huge = next(c for c in changes if c.sequence_int == 25)
        assert huge.new_image is None
        assert huge.changes["reasoning"] == {}
        big = next(c for c in changes if c.sequence_int == 1)
        assert big.changes["reasoning"]["new"].startswith("1 after é")


def test_collections_and_queues_follow_chromasync_collections(
    producer_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CHROMASYNC_COLLECTIONS", "receipt_lines,receipt_words")
    settings = Settings.from_env()
    queues = Queues(settings)
    records = [
        entity_record("RECEIPT_WORD_LABEL", "INSERT", 1),
        entity_record("RECEIPT_LINE", "INSERT", 2),
        entity_record("RECEIPT_WORD", "REMOVE", 3),
    ]
    processor_for(settings).process(records)
    tasks = queues.all_tasks()
    got = {c: [x.sequence_int for t in ts for x in t.batch.changes] for c, ts in tasks.items()}
    assert got == {"receipt_lines": [1, 2], "receipt_words": [1, 3]}
    assert all(t.batch.collection == c for c, ts in tasks.items() for t in ts)


def test_fifo_queues_group_per_receipt_and_keep_order(
    producer_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CHROMASYNC_FIFO", "true")
    monkeypatch.setenv("CHROMASYNC_MAX_CHANGES_PER_TASK", "2")
    settings = Settings.from_env()
    queues = Queues(settings)
    for collection in settings.collections:
        for name in (settings.sqs_queue_name(collection), settings.dlq_name(collection)):
            assert name.endswith(".fifo")
            attributes = queues.sqs.get_queue_attributes(
                QueueUrl=queues.url(name), AttributeNames=["All"]
            )["Attributes"]
            assert attributes["FifoQueue"] == "true"
    # 3 receipts x 5 line edits, interleaved: 3 tasks per receipt (2 + 2 + 1 changes).
    records = [line_record("MODIFY", seq, receipt=1 + seq % 3, line=seq) for seq in range(1, 16)]
    report = processor_for(settings).process(records)
    assert report.tasks_sent == 9 and report.failed_from is None
    # Sent again before anything was read: SQS drops the copies by deduplication id.
    assert processor_for(settings).process(records).tasks_sent == 9
    tasks = queues.tasks(settings.lines_collection)
    assert len(tasks) == 9
    per_group: dict[str, list[int]] = {}
    for task in tasks:
        group = task.attributes["MessageGroupId"]
        assert {receipt_group(c.keys.image_id, c.keys.receipt_id) for c in task.batch.changes} == {
            group
        }
        ids = "|".join([task.batch.collection] + [c.event_id for c in task.batch.changes])
        expected = hashlib.sha256(ids.encode()).hexdigest()
        assert task.attributes["MessageDeduplicationId"] == expected
        per_group.setdefault(group, []).extend(c.sequence_int for c in task.batch.changes)
    assert per_group == {
        f"{IMAGE}#{r:05d}": [s for s in range(1, 16) if 1 + s % 3 == r] for r in (1, 2, 3)
    }


def test_an_unreachable_sqs_endpoint_is_named_quickly(
    producer_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    port = free_port()  # nothing listens there
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{port}")
    settings = Settings.from_env()
    processor = processor_for(settings, attempts=2, sleep=lambda _: None)
    started = time.monotonic()
    report = processor.process([line_record("INSERT", 1)])
    elapsed = time.monotonic() - started
    assert report.failed_from == 0
    assert report.error and f"127.0.0.1:{port}" in report.error
    assert "after 2 attempts" in report.error
    # kombu does not add its own connection retries (2 s, 4 s...) to every attempt.
    assert elapsed < 3, elapsed
    batch = ChangeBatch(
        collection="lines",
        changes=[
            Change(
                entity_type="RECEIPT",
                event_name="REMOVE",
                keys={"image_id": IMAGE, "receipt_id": 1},
                sequence_number="1",
                event_id="e1",
            )
        ],
    )
    with pytest.raises(PublishError, match=f"queue 'lines' at sqs://127.0.0.1:{port}"):
        Publisher(settings, attempts=1).publish(batch)


def test_fifo_group_ids_stay_valid_for_any_image_id() -> None:
    assert receipt_group(IMAGE, 3) == f"{IMAGE}#00003"
    odd = [receipt_group("scan 7 é", 1), receipt_group("scan 7 é", 2), receipt_group("x" * 200, 1)]
    allowed = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")
    allowed |= set("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~")
    for value in odd:
        assert set(value) <= allowed and len(value) <= 128
    assert len(set(odd)) == 3


def test_a_queue_prefix_sqs_cannot_hold_is_refused_by_name(
    producer_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CHROMASYNC_QUEUE_PREFIX", "team.a-")
    with pytest.raises(ConfigError, match="CHROMASYNC_QUEUE_PREFIX='team.a-'"):
        Settings.from_env()
