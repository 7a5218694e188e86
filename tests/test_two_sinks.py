"""Both sinks side by side from one stream: Chroma and the receipts dashboard, real workers.

One table, one stream, one poller; a worker per target (lines, words, dashboard),
each with its own queue, lock and dead-letter queue. Every check goes through
what an operator runs (``chromasync verify``, ``chromasync dlq list``).
"""

from __future__ import annotations

from typing import Any

import boto3
import pytest

from chromasync.core.keys import image_pk, receipt_sk, word_sk
from chromasync.local import wait_for
from chromasync.provision import queue_depth
from chromasync.seed import demo_receipts, merchant_fields
from tests.stack import Stack


@pytest.fixture
def two_sinks(stack_env: dict[str, str], monkeypatch: pytest.MonkeyPatch, tmp_path) -> Any:
    monkeypatch.setenv("CHROMASYNC_SINKS", "chroma,dashboard")
    system = Stack({**stack_env, "CHROMASYNC_SINKS": "chroma,dashboard"}, tmp_path)
    yield system
    system.stop()


def dashboard_items(stack: Stack) -> list[dict[str, Any]]:
    table = boto3.resource("dynamodb", **stack.settings.aws.client_kwargs()).Table(
        f"{stack.settings.table}-dashboard"
    )
    items: list[dict[str, Any]] = []
    kwargs: dict[str, Any] = {"ConsistentRead": True}
    while True:
        page = table.scan(**kwargs)
        items += page["Items"]
        if "LastEvaluatedKey" not in page:
            return items
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def receipt_items(stack: Stack) -> dict[tuple[str, int], dict[str, Any]]:
    return {
        (str(i["image_id"]), int(i["receipt_id"])): i
        for i in dashboard_items(stack)
        if i.get("kind") == "receipt"
    }


def test_both_sinks_follow_one_stream(two_sinks: Stack) -> None:
    stack = two_sinks
    receipts = demo_receipts(3, lines=2, words_per_line=2)
    a, b, c = receipts
    stack.seed(receipts)
    stack.start_workers()
    assert sorted(w.collection for w in stack.workers) == ["dashboard", "lines", "words"]
    poller = stack.poller()
    stack.drain(poller)

    clean = stack.cli("verify")
    assert clean.returncode == 0, clean.stdout + clean.stderr
    assert "chroma: no drift" in clean.stdout and "dashboard: no drift" in clean.stdout
    projected = receipt_items(stack)
    assert set(projected) == {(s.image_id, s.receipt_id) for s in receipts}
    first = projected[(a.image_id, a.receipt_id)]
    assert first["PK"] == f"MERCHANT#{merchant_fields(0)['canonical_merchant_name']}"
    assert (first["line_count"], first["word_count"]) == (2, 4)

    # A rename moves a's receipt item; c's receipt is removed from both sinks.
    stack.edit_merchants([a], edition=1)
    stack.table.delete_item(Key={"PK": image_pk(c.image_id), "SK": receipt_sk(c.receipt_id)})
    stack.drain(poller)
    projected = receipt_items(stack)
    assert set(projected) == {(a.image_id, a.receipt_id), (b.image_id, b.receipt_id)}
    renamed = merchant_fields(0, 1)["canonical_merchant_name"]
    assert projected[(a.image_id, a.receipt_id)]["PK"] == f"MERCHANT#{renamed}"
    after = stack.cli("verify")
    assert after.returncode == 0, after.stdout + after.stderr

    # A bad item: b's merchant loses its canonical name. The dashboard dead-letters b's
    # change with the reason; Chroma applies it; a's label change applies on both.
    stack.table.update_item(
        Key={"PK": image_pk(b.image_id), "SK": f"{receipt_sk(b.receipt_id)}#METADATA"},
        UpdateExpression="REMOVE canonical_merchant_name",
    )
    stack.table.put_item(
        Item={
            "PK": image_pk(a.image_id),
            "SK": f"{word_sk(a.receipt_id, 2, 2)}#LABEL#TOTAL",
            "label": "TOTAL",
            "validation_status": "VALID",
        }
    )
    stack.drain(poller)
    dlq = stack.settings.dlq_name("dashboard")
    wait_for(lambda: queue_depth(stack.sqs, dlq).visible == 1, 30, what="a dashboard letter")
    letters = stack.cli("dlq", "list", "--collection", "dashboard")
    assert letters.returncode == 0, letters.stdout + letters.stderr
    assert "ProjectionError" in letters.stdout and "1 dead letters" in letters.stdout
    (row,) = [line for line in letters.stdout.splitlines() if "dashboard-dlq" in line]
    shown = stack.cli("dlq", "show", "--collection", "dashboard", row.split()[1])
    assert "canonical_merchant_name" in shown.stdout and b.image_id in shown.stdout
    assert "TOTAL" in {str(i.get("label")) for i in dashboard_items(stack)}
    for collection in (stack.lines, stack.words):
        assert queue_depth(stack.sqs, stack.settings.dlq_name(collection)).visible == 0


def test_verify_repairs_a_tampered_dashboard(two_sinks: Stack) -> None:
    stack = two_sinks
    receipts = demo_receipts(2, lines=2, words_per_line=2)
    stack.seed(receipts)
    stack.start_workers()
    stack.drain(stack.poller())
    table = boto3.resource("dynamodb", **stack.settings.aws.client_kwargs()).Table(
        f"{stack.settings.table}-dashboard"
    )
    victim = receipt_items(stack)[(receipts[0].image_id, receipts[0].receipt_id)]
    table.update_item(
        Key={"PK": victim["PK"], "SK": victim["SK"]},
        UpdateExpression="SET line_count = :n",
        ExpressionAttributeValues={":n": 99},
    )
    found = stack.cli("verify", "--sink", "dashboard")
    assert found.returncode == 1, found.stdout + found.stderr
    assert "line_count" in found.stdout and "chroma" not in found.stdout
    repaired = stack.cli("verify", "--sink", "dashboard", "--repair")
    assert "corrective changes enqueued" in repaired.stdout, repaired.stdout + repaired.stderr
    stack.wait_drained(60, "the dashboard repair to be applied")
    again = stack.cli("verify", "--sink", "dashboard")
    assert again.returncode == 0, again.stdout + again.stderr
    assert receipt_items(stack)[(receipts[0].image_id, receipts[0].receipt_id)]["line_count"] == 2
