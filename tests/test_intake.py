"""Every message a worker receives ends applied or in the dead-letter queue, at once, with its body.

Before: an envelope whose body was not JSON was acknowledged and gone (Celery
logs "Can't decode message body"); a call with no arguments, an extra keyword,
an unknown task name or a pickle body stayed unacknowledged until the queue's
RedrivePolicy moved it, ten visibility timeouts later, as "WorkerLost" with
payload null.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest

from chromasync.core.contract import APPLY_TASK_NAME
from chromasync.core.keys import image_pk, receipt_sk, word_embedding_id
from chromasync.local import wait_for
from chromasync.seed import demo_receipts, merchant_fields
from producers.publishing import producer_app
from tasks.deadletter import DeadLetterQueues
from tasks.intake import APPLY_KEYWORDS, call_error
from tests.stack import Stack
from tests.test_worker_apply import batch, make_change


@pytest.mark.parametrize(
    ("args", "kwargs", "fits"),
    [
        ((1,), {}, True),
        ((1,), {"history": None}, True),
        ((), {}, False),
        ((1, 2), {}, False),
        ((1,), {"bogus": 1}, False),
        ((), {"payload": 1}, False),
    ],
)
def test_call_error_says_what_does_not_fit(args: tuple, kwargs: dict, fits: bool) -> None:
    error = call_error(args, kwargs)
    assert (error is None) == fits
    if not fits:
        assert error is not None and "chromasync.apply_changes(payload)" in error
    assert {"history"} == APPLY_KEYWORDS


def _receive_one(stack: Stack, queue_url: str) -> dict[str, Any]:
    got = stack.sqs.receive_message(QueueUrl=queue_url, WaitTimeSeconds=5).get("Messages", [])
    assert got, "the message sent to build on did not arrive"
    stack.sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=got[0]["ReceiptHandle"])
    return got[0]


def undecodable_envelope(stack: Stack, queue_url: str, payload: dict[str, Any]) -> str:
    """A real Celery envelope (sent by Celery, read back) whose body is not JSON."""
    producer_app(stack.env).send_task(APPLY_TASK_NAME, args=[payload], queue=stack.words)
    envelope = json.loads(base64.b64decode(_receive_one(stack, queue_url)["Body"]))
    envelope["body"] = base64.b64encode(b'{"this is": not json').decode()
    return base64.b64encode(json.dumps(envelope).encode()).decode()


def _counts(stack: Stack, queue_url: str) -> tuple[int, int]:
    attrs = stack.sqs.get_queue_attributes(
        QueueUrl=queue_url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return int(attrs["ApproximateNumberOfMessages"]), int(
        attrs["ApproximateNumberOfMessagesNotVisible"]
    )


def test_every_message_a_worker_cannot_run_is_dead_lettered_at_once_with_its_body(
    stack: Stack, tmp_path: Path
) -> None:
    (spec,) = demo_receipts(1, lines=1, words_per_line=1)
    stack.seed([spec])
    queue_url = stack.sqs.get_queue_url(QueueName=stack.settings.sqs_queue_name(stack.words))[
        "QueueUrl"
    ]
    dlq_url = stack.sqs.get_queue_url(QueueName=stack.settings.dlq_name(stack.words))["QueueUrl"]
    payload = batch(stack.words, make_change("RECEIPT_METADATA", "MODIFY", spec)).to_payload()
    app = producer_app(stack.env)
    # Before the worker starts, so every one is waiting for it.
    stack.sqs.send_message(
        QueueUrl=queue_url, MessageBody=undecodable_envelope(stack, queue_url, payload)
    )
    app.send_task(APPLY_TASK_NAME, args=[], queue=stack.words)
    app.send_task(APPLY_TASK_NAME, args=[payload], kwargs={"bogus": 1}, queue=stack.words)
    app.send_task("chromasync.no_such_task", args=[payload], queue=stack.words)
    app.send_task(APPLY_TASK_NAME, args=[payload], serializer="pickle", queue=stack.words)
    stack.sqs.send_message(QueueUrl=queue_url, MessageBody="not a Celery message at all")
    expected = {
        "UnreadableMessage": 1,
        "MalformedTaskCall": 2,
        "UnknownTask": 1,
        "RefusedTaskCall": 1,
    }
    letters_wanted = sum(expected.values()) + 1  # the plain text body, whatever it is called

    stack.start_worker(stack.words)
    # "At once": well inside one visibility timeout (300 s here), with nothing left in flight.
    seen: list[tuple[tuple[int, int], tuple[int, int]]] = []

    def settled() -> bool:
        seen.append((_counts(stack, dlq_url), _counts(stack, queue_url)))
        return sum(seen[-1][0]) == letters_wanted and seen[-1][1] == (0, 0)

    try:
        wait_for(settled, 60, interval=0.2, what="every bad message dead-lettered, none left")
    except TimeoutError as exc:
        kinds = [
            r.letter.error_type for r in DeadLetterQueues(stack.settings).peek(stack.words, 20)
        ]
        raise AssertionError(f"{exc}; last (dlq, queue) counts: {seen[-1]}; {kinds}") from None
    letters = DeadLetterQueues(stack.settings).peek(stack.words, 20)
    kinds: dict[str, int] = {}
    for received in letters:
        kinds[received.letter.error_type] = kinds.get(received.letter.error_type, 0) + 1
    assert {k: kinds.get(k, 0) for k in expected} == expected, kinds
    for received in letters:
        letter = received.letter
        assert letter.error, letter
        if letter.error_type == "MalformedTaskCall":
            assert "chromasync.apply_changes(payload)" in letter.error
        else:
            assert letter.raw_body, letter
    unknown = next(r for r in letters if r.letter.error_type == "UnknownTask")
    assert "chromasync.no_such_task" in unknown.letter.error
    unreadable = next(r for r in letters if r.letter.error_type == "UnreadableMessage")
    shown = stack.cli("dlq", "show", unreadable.message_id)
    assert shown.returncode == 0, shown.stderr
    assert "raw body (as SQS delivered it)" in shown.stdout
    assert unreadable.letter.raw_body in shown.stdout
    plain = [r for r in letters if r.letter.raw_body == "not a Celery message at all"]
    assert len(plain) == 1, kinds

    # purge --id takes one letter; the others are visible again at once (they used to stay
    # hidden for a minute, so `dlq list` showed a falsely empty queue).
    purge = stack.cli("dlq", "purge", "--id", plain[0].message_id, "--yes")
    assert "1 dead letters deleted" in purge.stdout, purge.stdout + purge.stderr
    listed = stack.cli("dlq", "list", "--collection", stack.words)
    assert "5 dead letters" in listed.stdout, listed.stdout
    # Nothing to send back for a letter without a batch: redrive keeps those four, and
    # sends the batch of the call with a stray keyword back as a proper call.
    redrive = stack.cli("dlq", "redrive", "--collection", stack.words)
    assert redrive.returncode == 0, redrive.stderr
    assert redrive.stdout.count("has no batch to send back") == 4, redrive.stdout
    assert "1 dead letters sent back" in redrive.stdout
    listed = stack.cli("dlq", "list", "--collection", stack.words)
    assert "4 dead letters" in listed.stdout, listed.stdout

    # The worker is still consuming: a good batch is applied.
    fields = merchant_fields(0, 3)
    stack.table.put_item(
        Item={
            "PK": image_pk(spec.image_id),
            "SK": f"{receipt_sk(spec.receipt_id)}#METADATA",
            **fields,
        }
    )
    stack.send(payload, stack.words)
    eid = word_embedding_id(spec.image_id, spec.receipt_id, 1, 1)

    def applied() -> bool:
        got = stack.collection(stack.words).get(ids=[eid], include=["metadatas"])
        return (
            bool(got["ids"]) and got["metadatas"][0].get("merchant_name") == fields["merchant_name"]
        )

    wait_for(applied, 60, interval=0.2, what="a good batch after the bad ones")
