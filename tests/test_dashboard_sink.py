"""The dashboard sink's apply on moto: every entity's effect, convergence, late duplicates,
bad items, TTL, and one batch through the worker's runtime with a real Redis lock."""

from __future__ import annotations

import random
from decimal import Decimal
from pathlib import Path

import pytest

from chromasync.core.config import ConfigError
from chromasync.core.contract import ChangeBatch
from chromasync.core.resources import MissingResource
from chromasync.provision import ensure_sink_tables
from chromasync.seed import demo_receipts, table_items
from tasks.audit import read_audit
from tasks.config import WorkerSettings
from tasks.runtime import WorkerRuntime
from tasks.sinks import sink_class
from tasks.sinks.dashboard import DashboardSink, ProjectionError
from tasks.sinks.dashboard.items import stored_seq
from tasks.sinks.dashboard.table import TABLE_SCHEMA
from tests.dashboard import DashboardSystem, dashboard_env, key_of, label_suffix, word_suffix


@pytest.fixture
def system(aws_env: dict[str, str], redis_client) -> DashboardSystem:
    return DashboardSystem.seeded(aws_env)


def test_the_sink_is_found_by_its_name() -> None:
    assert sink_class("dashboard") is DashboardSink


def test_a_receipt_insert_projects_the_receipt_and_its_labels(system: DashboardSystem) -> None:
    first, second = system.receipts
    insert = system.change("RECEIPT", "INSERT", first)
    written = system.apply(insert)
    assert not written.failed and written.result.write_calls == 1
    assert written.result.updated == 4  # the receipt item and three label items
    item = system.receipt_item(first)
    assert (item["PK"], item["SK"]) == (
        "MERCHANT#Blue Bottle Coffee",
        f"DAY#2026-01-01#RECEIPT#{first.image_id}#00001",
    )
    assert item["merchant_name"] == "BLUE BOTTLE COFFEE" and item["day"] == "2026-01-01"
    assert item["receipt"] == f"{first.image_id}#00001"  # the by_receipt index's key
    assert (item["line_count"], item["word_count"]) == (3, 6)
    assert (item["labels_valid"], item["labels_invalid"], item["labels_pending"]) == (1, 0, 2)
    assert "total" not in item and "expires_at" not in item
    assert item["seq"] == stored_seq(insert.sequence_int) and len(item["seq"]) == 40
    labels = system.of_kind("label", first)
    assert sorted(labels) == [
        (
            "LABEL#PRODUCT_NAME#DAY#2026-01-01",
            f"RECEIPT#{first.image_id}#00001#LINE#{line:05d}#WORD#00001",
        )
        for line in (1, 2, 3)
    ]
    one = labels[min(labels)]
    assert one["text"] == "w1.1" and one["validation_status"] == "VALID"
    assert {label["receipt"] for label in labels.values()} == {f"{first.image_id}#00001"}
    assert one["merchant"] == "Blue Bottle Coffee" and one["word_id"] == 1
    assert system.of_kind("receipt", second) == {}  # only the receipt that moved


def test_a_receipt_remove_leaves_a_tombstone(system: DashboardSystem) -> None:
    first, second = system.receipts
    system.apply(
        system.change("RECEIPT", "INSERT", first), system.change("RECEIPT", "INSERT", second)
    )
    system.remove(first, "")
    removed = system.apply(system.change("RECEIPT", "REMOVE", first))
    assert removed.result.deleted == 4
    assert system.of_kind("receipt", first) == {} and system.of_kind("label", first) == {}
    (manifest,) = system.of_kind("manifest", first).values()
    assert manifest["removed"] is True and manifest["keys"] == []
    assert system.receipt_item(second)["line_count"] == 3  # untouched


def test_metadata_insert_rename_and_remove(system: DashboardSystem) -> None:
    first, _ = system.receipts
    system.remove(first, "#METADATA")
    waiting = system.apply(system.change("RECEIPT", "INSERT", first))
    assert not waiting.failed and system.of_kind("receipt", first) == {}  # not projectable yet
    system.put(first, "#METADATA", canonical_merchant_name="Corner Shop", merchant_name="CORNER")
    system.apply(system.change("RECEIPT_METADATA", "INSERT", first))
    assert system.receipt_item(first)["PK"] == "MERCHANT#Corner Shop"

    system.update(first, "#METADATA", canonical_merchant_name="Corner Shop & Co")
    renamed = system.apply(system.change("RECEIPT_METADATA", "MODIFY", first))
    assert renamed.result.deleted == 1  # the receipt item moved to the new merchant
    item = system.receipt_item(first)
    assert item["PK"] == "MERCHANT#Corner Shop & Co" and item["merchant"] == "Corner Shop & Co"
    assert {i["merchant"] for i in system.of_kind("label", first).values()} == {"Corner Shop & Co"}

    system.remove(first, "#METADATA")
    system.apply(system.change("RECEIPT_METADATA", "REMOVE", first))
    assert system.of_kind("receipt", first) == {} and system.of_kind("label", first) == {}
    (manifest,) = system.of_kind("manifest", first).values()
    assert manifest["keys"] == [] and "removed" not in manifest


def test_lines_and_words_are_counted(system: DashboardSystem) -> None:
    first, _ = system.receipts
    system.apply(system.change("RECEIPT", "INSERT", first))
    system.put(first, "#LINE#00004", text="line 4")
    system.put(first, word_suffix(4, 1), text="w4.1")
    system.apply(
        system.change("RECEIPT_LINE", "INSERT", first, line_id=4),
        system.change("RECEIPT_WORD", "INSERT", first, line_id=4, word_id=1),
    )
    item = system.receipt_item(first)
    assert (item["line_count"], item["word_count"]) == (4, 7)
    system.remove(first, "#LINE#00002")
    system.remove(first, word_suffix(2, 2))
    system.apply(
        system.change("RECEIPT_LINE", "REMOVE", first, line_id=2),
        system.change("RECEIPT_WORD", "REMOVE", first, line_id=2, word_id=2),
    )
    item = system.receipt_item(first)
    assert (item["line_count"], item["word_count"]) == (3, 6)


def test_word_text_feeds_label_items_and_the_total(system: DashboardSystem) -> None:
    first, _ = system.receipts
    system.put(first, word_suffix(3, 2), text="$1,234.50")
    system.put(first, label_suffix(3, 2, "TOTAL"), label="TOTAL", validation_status="PENDING")
    system.put(first, word_suffix(1, 2), text="99.00")
    system.put(first, label_suffix(1, 2, "TOTAL"), label="TOTAL", validation_status="INVALID")
    system.apply(
        system.change("RECEIPT_WORD_LABEL", "INSERT", first, line_id=3, word_id=2, label="TOTAL")
    )
    assert system.receipt_item(first)["total"] == Decimal("99.00")  # no VALID one: first by key
    system.update(first, label_suffix(3, 2, "TOTAL"), validation_status="VALID")
    system.apply(
        system.change("RECEIPT_WORD_LABEL", "MODIFY", first, line_id=3, word_id=2, label="TOTAL")
    )
    assert system.receipt_item(first)["total"] == Decimal("1234.50")  # the VALID one

    system.update(first, word_suffix(3, 2), text="$2,000")
    system.update(first, word_suffix(1, 1), text="Espresso")
    system.apply(
        system.change("RECEIPT_WORD", "MODIFY", first, line_id=3, word_id=2),
        system.change("RECEIPT_WORD", "MODIFY", first, line_id=1, word_id=1),
    )
    assert system.receipt_item(first)["total"] == Decimal("2000")
    texts = {i["SK"][-22:]: i.get("text") for i in system.of_kind("label", first).values()}
    assert texts["#LINE#00001#WORD#00001"] == "Espresso"
    system.update(first, word_suffix(3, 2), text="total")
    system.update(first, word_suffix(1, 2), text="n/a")
    system.apply(system.change("RECEIPT_WORD", "MODIFY", first, line_id=3, word_id=2))
    assert "total" not in system.receipt_item(first)  # no TOTAL word reads as an amount


def test_labels_insert_modify_remove(system: DashboardSystem) -> None:
    first, _ = system.receipts
    system.apply(system.change("RECEIPT", "INSERT", first))
    system.put(first, label_suffix(2, 2, "DATE"), label="DATE", validation_status="INVALID")
    system.apply(
        system.change("RECEIPT_WORD_LABEL", "INSERT", first, line_id=2, word_id=2, label="DATE")
    )
    item = system.receipt_item(first)
    assert (item["labels_valid"], item["labels_invalid"], item["labels_pending"]) == (1, 1, 2)
    date_key = (
        "LABEL#DATE#DAY#2026-01-01",
        f"RECEIPT#{first.image_id}#00001#LINE#00002#WORD#00002",
    )
    assert system.items()[date_key]["validation_status"] == "INVALID"

    system.update(first, label_suffix(2, 2, "DATE"), validation_status="VALID")
    system.apply(
        system.change("RECEIPT_WORD_LABEL", "MODIFY", first, line_id=2, word_id=2, label="DATE")
    )
    item = system.receipt_item(first)
    assert (item["labels_valid"], item["labels_invalid"], item["labels_pending"]) == (2, 0, 2)
    assert system.items()[date_key]["validation_status"] == "VALID"

    system.remove(first, label_suffix(2, 2, "DATE"))
    removed = system.apply(
        system.change("RECEIPT_WORD_LABEL", "REMOVE", first, line_id=2, word_id=2, label="DATE")
    )
    assert removed.result.deleted == 1 and date_key not in system.items()
    assert system.receipt_item(first)["labels_valid"] == 1


def _history(system: DashboardSystem) -> list:
    """Edit the table step by step, returning each step's change (the stream's record)."""
    first, second = system.receipts
    steps = [system.change("RECEIPT", "INSERT", spec) for spec in (first, second)]
    system.update(first, "#METADATA", canonical_merchant_name="Renamed")
    steps.append(system.change("RECEIPT_METADATA", "MODIFY", first))
    system.put(second, label_suffix(1, 2, "TOTAL"), label="TOTAL", validation_status="VALID")
    system.update(second, word_suffix(1, 2), text="12.34")
    steps.append(
        system.change("RECEIPT_WORD_LABEL", "INSERT", second, line_id=1, word_id=2, label="TOTAL")
    )
    steps.append(system.change("RECEIPT_WORD", "MODIFY", second, line_id=1, word_id=2))
    system.remove(first, label_suffix(2, 1, "PRODUCT_NAME"))
    steps.append(
        system.change(
            "RECEIPT_WORD_LABEL", "REMOVE", first, line_id=2, word_id=1, label="PRODUCT_NAME"
        )
    )
    system.remove(second, "#LINE#00003")
    steps.append(system.change("RECEIPT_LINE", "REMOVE", second, line_id=3))
    return steps


def test_duplicates_reordering_and_replay_converge_byte_for_byte(system: DashboardSystem) -> None:
    steps = _history(system)
    for change in steps:
        system.apply(change)
    reference = system.dump()
    assert "Renamed" in reference and "12.34" in reference

    system.clear()
    for change in reversed(steps):
        system.apply(change)
    assert system.dump() == reference

    system.clear()
    shuffled = [c for c in steps for _ in range(10)]
    random.Random(7).shuffle(shuffled)
    for start in range(0, len(shuffled), 7):
        system.apply(*shuffled[start : start + 7])
    assert system.dump() == reference

    replayed = system.apply(*steps)  # the whole history again, as one batch
    assert system.dump() == reference
    assert not replayed.failed


def test_a_late_duplicate_is_superseded_even_after_the_table_changed(
    system: DashboardSystem,
) -> None:
    first, _ = system.receipts
    late = system.change("RECEIPT_METADATA", "MODIFY", first)
    system.apply(system.change("RECEIPT_METADATA", "MODIFY", first))
    before = system.dump()
    system.update(first, "#METADATA", canonical_merchant_name="Not Yet Streamed")
    written = system.apply(late)
    assert written.result.superseded == 1 and written.result.write_calls == 0
    assert not written.failed and system.dump() == before


def test_a_newer_item_written_meanwhile_cancels_the_write_as_superseded(
    system: DashboardSystem,
) -> None:
    first, _ = system.receipts
    system.apply(system.change("RECEIPT", "INSERT", first))
    item = system.receipt_item(first)
    newer = stored_seq(10**39)  # another writer's newer state, after our manifest read
    system.dynamodb.update_item(
        TableName=system.dashboard_table,
        Key={"PK": {"S": item["PK"]}, "SK": {"S": item["SK"]}},
        UpdateExpression="SET seq = :s",
        ExpressionAttributeValues={":s": {"S": newer}},
    )
    before = system.dump()
    written = system.apply(system.change("RECEIPT_LINE", "REMOVE", first, line_id=1))
    assert written.result.superseded == 1 and written.result.updated == 0
    assert system.dump() == before


def test_bad_items_fail_alone_with_the_reason(system: DashboardSystem) -> None:
    first, second = system.receipts
    system.remove_attribute(first, "#METADATA", "canonical_merchant_name")
    system.remove_attribute(second, "", "timestamp_added")
    third = demo_receipts(3, lines=3, words_per_line=2)[2]
    for item in table_items(third, 2):
        system.table.put_item(Item=item)
    written = system.apply(
        system.change("RECEIPT_METADATA", "MODIFY", first),
        system.change("RECEIPT", "INSERT", third),
        system.change("RECEIPT", "INSERT", second),
        system.change("RECEIPT_LINE", "MODIFY", first, line_id=1),
    )
    assert sorted(written.failed) == [0, 2, 3]
    merchant, day = written.failed[0], written.failed[2]
    assert isinstance(merchant, ProjectionError) and merchant.attribute == "canonical_merchant_name"
    assert f"receipt {first.image_id}#00001" in str(merchant) and "merchant" in str(merchant)
    assert isinstance(day, ProjectionError) and "timestamp_added" in str(day)
    assert written.failed[3] is merchant
    assert system.receipt_item(third)["day"] == "2026-01-03"  # the rest applied
    assert system.of_kind("receipt", first) == {} and system.of_kind("receipt", second) == {}


def test_ttl_sets_expires_at_from_the_receipt_day(aws_env: dict[str, str], redis_client) -> None:
    system = DashboardSystem.seeded(aws_env, CHROMASYNC_DASHBOARD_TTL_DAYS="30")
    first, _ = system.receipts
    system.apply(system.change("RECEIPT", "INSERT", first))
    expected = 1767225600 + 30 * 86400  # 2026-01-01T00:00Z + 30 days
    items = system.of_kind("receipt", first) | system.of_kind("label", first)
    assert {i["expires_at"] for i in items.values()} == {expected}
    ttl = system.dynamodb.describe_time_to_live(TableName=system.dashboard_table)
    assert ttl["TimeToLiveDescription"]["AttributeName"] == "expires_at"


@pytest.mark.parametrize(
    ("variable", "value", "says"),
    [
        ("CHROMASYNC_DASHBOARD_TTL_DAYS", "-1", "must be at least 0"),
        ("CHROMASYNC_DASHBOARD_TTL_DAYS", "a week", "is not a whole number"),
        ("CHROMASYNC_DASHBOARD_TABLE", "no spaces allowed", "not a valid DynamoDB table name"),
        ("CHROMASYNC_DASHBOARD_TABLE", "ReceiptsTable", "names the source table"),
    ],
)
def test_wrong_settings_are_refused_naming_the_variable(variable, value, says) -> None:
    settings = WorkerSettings.from_env({"CHROMASYNC_SINKS": "chroma,dashboard", variable: value})
    with pytest.raises(ConfigError) as refused:
        DashboardSink.check_settings(settings)
    assert variable in str(refused.value) and says in str(refused.value)


def test_the_probe_names_the_table_until_it_is_provisioned(
    aws_env: dict[str, str], redis_client
) -> None:
    import boto3

    settings = WorkerSettings.from_env(dashboard_env(aws_env))
    dynamodb = boto3.client("dynamodb", **settings.shared.aws.client_kwargs())
    ((service, call),) = DashboardSink.probes(settings, "dashboard", dynamodb)
    with pytest.raises(MissingResource) as missing:
        call()
    table = f"{settings.shared.table}-dashboard"
    assert f"DynamoDB table '{table}' does not exist" in str(missing.value)
    assert "chromasync provision" in str(missing.value)
    assert dynamodb.list_tables()["TableNames"] == []  # named, never created
    (made,) = ensure_sink_tables(settings, dynamodb)
    arn = made.detail
    assert (made.kind, made.name) == ("DynamoDB table", table) and arn.endswith(f"table/{table}")
    assert ensure_sink_tables(settings, dynamodb)[0].detail == arn  # again: no error
    ttl = dynamodb.describe_time_to_live(TableName=table)["TimeToLiveDescription"]
    assert (ttl["TimeToLiveStatus"], ttl["AttributeName"]) == ("ENABLED", "expires_at")
    (index,) = dynamodb.describe_table(TableName=table)["Table"]["GlobalSecondaryIndexes"]
    assert index["IndexName"] == "by_receipt"
    assert index["KeySchema"] == TABLE_SCHEMA["GlobalSecondaryIndexes"][0]["KeySchema"]
    assert index["Projection"] == {"ProjectionType": "KEYS_ONLY"}
    call()


def test_the_probe_names_the_index_a_table_made_before_it_lacks(
    aws_env: dict[str, str], redis_client
) -> None:
    """A repair Queries ``by_receipt``: a worker refuses to start on a table without it."""
    import boto3

    settings = WorkerSettings.from_env(dashboard_env(aws_env))
    dynamodb = boto3.client("dynamodb", **settings.shared.aws.client_kwargs())
    table = f"{settings.shared.table}-dashboard"
    older = {k: v for k, v in TABLE_SCHEMA.items() if k != "GlobalSecondaryIndexes"}
    older["AttributeDefinitions"] = TABLE_SCHEMA["AttributeDefinitions"][:2]
    dynamodb.create_table(TableName=table, **older)
    ((_service, call),) = DashboardSink.probes(settings, "dashboard", dynamodb)
    with pytest.raises(MissingResource) as missing:
        call()
    assert f"DynamoDB index '{table}/by_receipt' does not exist" in str(missing.value)
    assert "update-table" in str(missing.value)


def test_a_batch_through_the_runtime_under_a_redis_lease(
    system: DashboardSystem, tmp_path: Path
) -> None:
    audit = tmp_path / "audit.jsonl"
    settings = WorkerSettings.from_env({**system.env, "CHROMASYNC_AUDIT_LOG": str(audit)})
    runtime = WorkerRuntime(settings, sinks={"dashboard": system.sink})
    first, second = system.receipts
    try:
        batch = ChangeBatch(
            collection="dashboard",
            changes=[system.change("RECEIPT", "INSERT", spec) for spec in (first, second)],
        )
        outcome = runtime.apply_batch(batch)
    finally:
        runtime.lock_backend.close()
    assert outcome.applied == 2 and not outcome.failed and outcome.fence is not None
    assert outcome.result.write_calls == 2 and outcome.result.updated == 8
    writes = [r for r in read_audit(str(audit)) if r["event"] == "write"]
    assert [(w["collection"], w["kind"], w["fence"]) for w in writes] == [
        ("dashboard", "transact", outcome.fence)
    ] * 2
    assert {key_of(s) for s in (first, second)} == {
        (i["image_id"], i["receipt_id"]) for i in system.of_kind("receipt").values()
    }


def test_a_receipt_of_many_labels_is_written_in_chunks_manifest_last(
    system: DashboardSystem,
) -> None:
    first, _ = system.receipts
    many = [f"L{n:03d}" for n in range(120)]
    with system.table.batch_writer() as batch:
        for label in many:
            batch.put_item(Item={**system.key(first, label_suffix(2, 2, label)), "label": label})
    written = system.apply(system.change("RECEIPT", "INSERT", first))
    assert written.result.write_calls == 2 and written.result.updated == 124
    (manifest,) = system.of_kind("manifest", first).values()
    assert len(manifest["keys"]) == 124 and len(system.of_kind("label", first)) == 123
    with system.table.batch_writer() as batch:
        for label in many:
            batch.delete_item(Key=system.key(first, label_suffix(2, 2, label)))
    removed = system.apply(
        system.change("RECEIPT_WORD_LABEL", "REMOVE", first, line_id=2, word_id=2, label="L000")
    )
    assert removed.result.deleted == 120 and removed.result.write_calls == 2
    assert system.receipt_item(first)["labels_pending"] == 2
    assert len(system.of_kind("label", first)) == 3
