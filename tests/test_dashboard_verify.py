"""Verify of the dashboard sink on moto: clean, drift found, repairs through apply, bad receipts;
and a bad receipt's dead letter through the real Celery task."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from chromasync.core.contract import ChangeBatch
from chromasync.provision import ensure_queues
from tasks.deadletter import DeadLetterQueues
from tasks.sinks.dashboard.verify import DashboardVerification
from tests.dashboard import DashboardSystem, label_suffix


@pytest.fixture
def system(aws_env: dict[str, str], redis_client) -> DashboardSystem:
    system = DashboardSystem.seeded(aws_env, count=3)
    system.apply(*(system.change("RECEIPT", "INSERT", spec) for spec in system.receipts))
    return system


def verify(system: DashboardSystem, **scope) -> DashboardVerification:
    return system.sink.verify(["dashboard"], **scope)


def apply_repairs(system: DashboardSystem, report: DashboardVerification) -> list[ChangeBatch]:
    batches = report.repairs(max_changes=2)
    for batch in batches:
        written = system.apply(*batch.changes)
        assert not written.failed and not written.result.superseded
    return batches


def test_clean_after_apply(system: DashboardSystem) -> None:
    report = verify(system)
    assert report.clean and report.repairs(10) == [] and report.unrepairable() is None
    assert (
        report.summary()
        == "checked 3 receipts, 12 dashboard items: 0 missing, 0 extra, 0 differing"
    )
    scoped = verify(system, image_id=system.receipts[1].image_id, receipt_id=2)
    assert scoped.clean and scoped.summary().startswith("checked 1 receipts, 4 dashboard items")


def test_tampered_deleted_and_extra_items_are_found_and_repaired(system: DashboardSystem) -> None:
    first, second, third = system.receipts
    before = system.dump()
    receipt = system.receipt_item(first)
    table, client = system.dashboard_table, system.dynamodb
    client.update_item(
        TableName=table,
        Key={"PK": {"S": receipt["PK"]}, "SK": {"S": receipt["SK"]}},
        UpdateExpression="SET line_count = :n",
        ExpressionAttributeValues={":n": {"N": "99"}},
    )
    gone = min(system.of_kind("label", second))
    client.delete_item(TableName=table, Key={"PK": {"S": gone[0]}, "SK": {"S": gone[1]}})
    extra = ("LABEL#FAKE#DAY#2026-01-03", f"RECEIPT#{third.image_id}#00003#LINE#00009#WORD#00009")
    client.put_item(
        TableName=table,
        Item={
            "PK": {"S": extra[0]},
            "SK": {"S": extra[1]},
            "kind": {"S": "label"},
            "image_id": {"S": third.image_id},
            "receipt_id": {"N": "3"},
            "receipt": {"S": f"{third.image_id}#00003"},  # as every item written is
        },
    )

    report = verify(system)
    assert (
        report.summary()
        == "checked 3 receipts, 12 dashboard items: 1 missing, 1 extra, 1 differing"
    )
    kinds = {(d.kind, d.key) for d in report.drift}
    assert ("missing", f"{gone[0]}|{gone[1]}") in kinds
    assert ("extra", f"{extra[0]}|{extra[1]}") in kinds
    (differs,) = [d for d in report.drift if d.kind == "differs"]
    assert differs.fields == ("line_count",) and "dashboard 99 != table 3" in differs.detail

    batches = apply_repairs(system, report)
    changes = [c for b in batches for c in b.changes]
    assert [len(b.changes) for b in batches] == [2, 1]
    assert {b.collection for b in batches} == {"dashboard"}
    assert {b.producer for b in batches} == {"chromasync-verify"}
    assert [c.event_id for c in changes] == [f"verify-repair-{n}" for n in (1, 2, 3)]
    assert {(c.entity_type, c.event_name) for c in changes} == {("RECEIPT_METADATA", "MODIFY")}
    manifest_seqs = {
        (m["image_id"], m["receipt_id"]): str(int(m["seq"]))
        for m in system.of_kind("manifest").values()
    }
    assert all(c.sequence_number == manifest_seqs[c.receipt_key] for c in changes)
    assert report.unrepairable() is None
    assert verify(system).clean
    assert system.dump() == before  # the very items the stream wrote, seq included


def test_items_of_a_receipt_no_longer_in_the_table_are_extra_and_removed(
    system: DashboardSystem,
) -> None:
    first, second, _ = system.receipts
    system.remove(first, "")  # its REMOVE was never applied
    report = verify(system)
    assert report.summary().startswith("checked 2 receipts, 12 dashboard items: 0 missing, 4 extra")
    assert {d.detail for d in report.drift if d.kind == "extra"} == {"receipt not in the table"}
    scoped = verify(system, image_id=second.image_id)
    assert scoped.clean  # another image: not in scope

    (batch,) = report.repairs(10)
    (change,) = batch.changes
    assert (change.entity_type, change.event_name, change.receipt_key) == (
        "RECEIPT",
        "REMOVE",
        (first.image_id, first.receipt_id),
    )
    apply_repairs(system, report)
    assert verify(system).clean
    (manifest,) = system.of_kind("manifest", first).values()
    assert manifest["removed"] is True


def test_a_receipt_that_cannot_be_projected_is_reported_not_repaired(
    system: DashboardSystem,
) -> None:
    first, second, _ = system.receipts
    system.remove_attribute(first, "#METADATA", "canonical_merchant_name")
    system.remove(second, label_suffix(1, 1, "PRODUCT_NAME"))
    report = verify(system)
    (bad,) = [d for d in report.drift if d.kind == "bad"]
    assert bad.key == f"RECEIPT#{first.image_id}#00001"
    assert "canonical_merchant_name" in bad.detail
    assert report.summary().endswith("1 differing, 1 receipts not projectable")
    assert "cannot be projected" in (report.unrepairable() or "")
    (batch,) = report.repairs(10)
    assert [c.receipt_key for c in batch.changes] == [(second.image_id, second.receipt_id)]


@pytest.fixture
def task_env(
    aws_env: dict[str, str], redis_client, monkeypatch: pytest.MonkeyPatch
) -> Iterator[DashboardSystem]:
    """A system whose settings are the process's, for the Celery task run in-process."""
    from tasks.runtime import reset_runtime

    system = DashboardSystem.seeded(aws_env, count=2)
    for name, value in system.env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("CELERY_BROKER_URL", raising=False)
    ensure_queues(system.settings.shared)
    reset_runtime()
    yield system
    reset_runtime()


def test_a_bad_receipt_is_dead_lettered_with_the_reason_by_the_task(
    task_env: DashboardSystem,
) -> None:
    from tasks.compaction import apply_changes

    system = task_env
    first, second = system.receipts
    system.remove_attribute(first, "", "timestamp_added")
    batch = ChangeBatch(
        collection="dashboard",
        changes=[system.change("RECEIPT", "INSERT", spec) for spec in (first, second)],
    )
    result = apply_changes.apply(args=[batch.to_payload()]).get(disable_sync_subtasks=False)
    assert (result["status"], result["applied"], result["failed"]) == ("applied", 1, 1)
    assert system.receipt_item(second)["line_count"] == 3
    (letter,) = DeadLetterQueues(system.settings.shared).peek("dashboard", 10)
    assert letter.letter.error_type == "ProjectionError" and letter.letter.permanent
    assert f"receipt {first.image_id}#00001" in letter.letter.error
    assert "timestamp_added" in letter.letter.error
    (change,) = letter.letter.payload["changes"]
    assert change["keys"]["image_id"] == first.image_id


def test_a_lost_manifest_is_found_and_written_again(system: DashboardSystem) -> None:
    first, _, _ = system.receipts
    ((pk, sk),) = system.of_kind("manifest", first)
    system.dynamodb.delete_item(
        TableName=system.dashboard_table, Key={"PK": {"S": pk}, "SK": {"S": sk}}
    )
    report = verify(system)
    assert report.summary().endswith("0 differing, 1 manifests out of date")
    (batch,) = report.repairs(10)
    (item,) = system.of_kind("receipt", first).values()
    assert batch.changes[0].sequence_number == str(int(item["seq"]))  # its items' seq
    apply_repairs(system, report)
    assert verify(system).clean


def test_a_stray_is_found_through_the_index_not_by_scanning(system: DashboardSystem) -> None:
    """The repair's Query of ``by_receipt`` lists the receipt's items and nothing else's."""
    first, second, _ = system.receipts
    expected = set(system.of_kind("receipt", first)) | set(system.of_kind("label", first))
    assert system.sink.store.receipt_keys((first.image_id, first.receipt_id)) == expected
    assert system.sink.store.receipt_keys((second.image_id, 9)) == set()


def test_an_extra_item_the_index_cannot_list_is_said_to_be_unrepairable(
    system: DashboardSystem,
) -> None:
    """An item of the receipt without ``receipt`` (before the index, or by hand) stays."""
    first, _, _ = system.receipts
    stray = ("LABEL#OLD#DAY#2026-01-01", f"RECEIPT#{first.image_id}#00001#LINE#00007#WORD#00007")
    system.dynamodb.put_item(
        TableName=system.dashboard_table,
        Item={
            "PK": {"S": stray[0]},
            "SK": {"S": stray[1]},
            "kind": {"S": "label"},
            "image_id": {"S": first.image_id},
            "receipt_id": {"N": "1"},
        },
    )
    report = verify(system)
    assert report.count("extra") == 1 and report.unindexed == [stray]
    said = report.unrepairable() or ""
    assert "1 extra items lack the 'receipt' attribute of index 'by_receipt'" in said
    assert f"{stray[0]}|{stray[1]}" in said
    apply_repairs(system, report)
    assert not verify(system).clean  # as said: the repair cannot see it
