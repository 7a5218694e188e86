"""The worker's apply path in-process: real table on moto, real Chroma directories, real lock.

Every entity × event of the entity table, coalescing, convergence under
duplicates and reordering, missing embeddings, the lease checked before
every write.
"""

from __future__ import annotations

import itertools
import random
from decimal import Decimal
from typing import Any

import pytest
import redis

from chromasync.core.contract import Change, ChangeBatch
from chromasync.core.entities import MERCHANT_FIELDS, CollectionRole
from chromasync.core.keys import (
    image_pk,
    line_embedding_id,
    line_sk,
    receipt_sk,
    word_embedding_id,
    word_sk,
)
from chromasync.seed import ReceiptSpec, demo_receipts, merchant_fields
from tasks.config import WorkerSettings
from tasks.lease import LeaseLost
from tasks.plan import build_plan
from tasks.runtime import WorkerRuntime
from tasks.sources import WHOLE_RECEIPT
from tests.stack import Stack

_sequence = itertools.count(1000)


def make_change(
    entity: str,
    event: str,
    spec: ReceiptSpec,
    line_id: int | None = None,
    word_id: int | None = None,
    label: str | None = None,
    run_id: str | None = None,
) -> Change:
    keys: dict[str, Any] = {"image_id": spec.image_id, "receipt_id": spec.receipt_id}
    for name, value in (
        ("line_id", line_id),
        ("word_id", word_id),
        ("label", label),
        ("run_id", run_id),
    ):
        if value is not None:
            keys[name] = value
    seq = str(next(_sequence))
    return Change(
        entity_type=entity, event_name=event, keys=keys, sequence_number=seq, event_id=f"ev-{seq}"
    )


def batch(collection: str, *changes: Change) -> ChangeBatch:
    return ChangeBatch(collection=collection, changes=list(changes))


@pytest.fixture
def system(stack: Stack) -> tuple[Stack, WorkerRuntime, list[ReceiptSpec]]:
    receipts = demo_receipts(2, lines=3, words_per_line=2)
    stack.seed(receipts)
    runtime = WorkerRuntime(WorkerSettings.from_env(stack.env), target=stack.target)
    yield stack, runtime, receipts
    runtime.lock_backend.close()


def meta(stack: Stack, collection: str, embedding_id: str) -> dict[str, Any] | None:
    got = stack.collection(collection).get(ids=[embedding_id], include=["metadatas"])
    return got["metadatas"][0] if got["ids"] else None


def receipt_ids(stack: Stack, collection: str, spec: ReceiptSpec) -> list[str]:
    where = {"$and": [{"image_id": spec.image_id}, {"receipt_id": spec.receipt_id}]}
    return sorted(stack.collection(collection).get(where=where, include=[])["ids"])


def metadata_key(spec: ReceiptSpec) -> dict[str, str]:
    return {"PK": image_pk(spec.image_id), "SK": f"{receipt_sk(spec.receipt_id)}#METADATA"}


def label_item(
    spec: ReceiptSpec,
    lid: int,
    wid: int,
    label: str,
    status: str,
    proposer: str = "llm",
    added: str = "2026-02-01T00:00:00",
) -> dict[str, Any]:
    return {
        "PK": image_pk(spec.image_id),
        "SK": f"{word_sk(spec.receipt_id, lid, wid)}#LABEL#{label}",
        "label": label,
        "validation_status": status,
        "label_proposed_by": proposer,
        "timestamp_added": added,
        "reasoning": "test",
    }


# -- RECEIPT_METADATA --------------------------------------------------------------------


@pytest.mark.parametrize("event", ["INSERT", "MODIFY"])
def test_metadata_insert_or_modify_sets_merchant_fields_everywhere(system, event) -> None:
    stack, runtime, (spec, other) = system
    fields = merchant_fields(7, edition=3)
    stack.table.put_item(Item={**metadata_key(spec), **fields})
    change = make_change("RECEIPT_METADATA", event, spec)
    for collection in (stack.lines, stack.words):
        outcome = runtime.apply_batch(batch(collection, change))
        assert outcome.applied == 1 and not outcome.waiting
        ids = receipt_ids(stack, collection, spec)
        assert outcome.result.updated == len(ids)
        for eid in ids:
            m = meta(stack, collection, eid)
            assert {k: m.get(k) for k in MERCHANT_FIELDS} == fields
    # The other receipt keeps its own merchant.
    for eid in receipt_ids(stack, stack.words, other):
        assert meta(stack, stack.words, eid)["merchant_name"] == merchant_fields(1)["merchant_name"]


def test_metadata_remove_clears_merchant_fields(system) -> None:
    stack, runtime, (spec, _other) = system
    stack.table.delete_item(Key=metadata_key(spec))
    change = make_change("RECEIPT_METADATA", "REMOVE", spec)
    for collection in (stack.lines, stack.words):
        runtime.apply_batch(batch(collection, change))
        for eid in receipt_ids(stack, collection, spec):
            m = meta(stack, collection, eid)
            assert not any(k in m for k in MERCHANT_FIELDS), m
            assert m["image_id"] == spec.image_id  # the rest of the metadata stays


# -- RECEIPT_WORD_LABEL --------------------------------------------------------------------


@pytest.mark.parametrize("event", ["REMOVE", "MODIFY"])
def test_a_label_change_of_a_word_or_line_the_table_no_longer_holds_waits_for_nothing(
    system, event: str
) -> None:
    """Delete a word, then its label (the normal order); or replay an old label record of
    a word deleted since. The word's embedding is gone for good: nothing to wait for.
    It used to wait CHROMASYNC_MISSING_EMBEDDING_TIMEOUT, then dead-letter as missing."""
    stack, runtime, (spec, _other) = system
    word_key = {"PK": image_pk(spec.image_id), "SK": word_sk(spec.receipt_id, 1, 1)}
    label_key = {
        "PK": image_pk(spec.image_id),
        "SK": f"{word_sk(spec.receipt_id, 1, 1)}#LABEL#TOTAL",
    }
    stack.table.put_item(Item=label_item(spec, 1, 1, "TOTAL", "VALID"))
    stack.table.delete_item(Key=word_key)
    if event == "REMOVE":
        stack.table.delete_item(Key=label_key)
    word = word_embedding_id(spec.image_id, spec.receipt_id, 1, 1)
    runtime.apply_batch(batch(stack.words, make_change("RECEIPT_WORD", "REMOVE", spec, 1, 1)))
    assert meta(stack, stack.words, word) is None
    label = make_change("RECEIPT_WORD_LABEL", event, spec, 1, 1, "TOTAL")
    outcome = runtime.apply_batch(batch(stack.words, label))
    assert not outcome.waiting and not outcome.failed and outcome.result.missing == set()
    assert meta(stack, stack.words, word) is None  # not brought back either
    # The same for a line: its label summary waits for nothing once the line is gone.
    line_key = {"PK": image_pk(spec.image_id), "SK": line_sk(spec.receipt_id, 1)}
    stack.table.delete_item(Key=line_key)
    runtime.apply_batch(batch(stack.lines, make_change("RECEIPT_LINE", "REMOVE", spec, 1)))
    outcome = runtime.apply_batch(batch(stack.lines, label))
    assert not outcome.waiting and not outcome.failed
    assert meta(stack, stack.lines, line_embedding_id(spec.image_id, spec.receipt_id, 1)) is None
    # A label of a word the table still holds is applied as before.
    stack.table.put_item(Item=label_item(spec, 2, 1, "DATE", "VALID"))
    kept = make_change("RECEIPT_WORD_LABEL", "INSERT", spec, 2, 1, "DATE")
    outcome = runtime.apply_batch(batch(stack.words, kept))
    assert outcome.applied == 1 and outcome.result.updated == 1
    assert (
        meta(stack, stack.words, word_embedding_id(spec.image_id, spec.receipt_id, 2, 1))[
            "valid_labels"
        ]
        == ",DATE,"
    )


def test_label_insert_modify_and_remove_rebuild_word_and_line_summaries(system) -> None:
    stack, runtime, (spec, _other) = system
    word = word_embedding_id(spec.image_id, spec.receipt_id, 2, 1)
    line = line_embedding_id(spec.image_id, spec.receipt_id, 2)
    # Seeded: PRODUCT_NAME (PENDING) on word 2.1. Add TOTAL (VALID) and DATE (INVALID).
    stack.table.put_item(
        Item=label_item(spec, 2, 1, "TOTAL", "VALID", "human", "2026-03-01T00:00:00")
    )
    stack.table.put_item(Item=label_item(spec, 2, 1, "DATE", "INVALID"))
    stack.table.put_item(Item=label_item(spec, 2, 2, "TAX", "PENDING"))
    changes = [
        make_change("RECEIPT_WORD_LABEL", "INSERT", spec, 2, 1, "TOTAL"),
        make_change("RECEIPT_WORD_LABEL", "INSERT", spec, 2, 1, "DATE"),
        make_change("RECEIPT_WORD_LABEL", "INSERT", spec, 2, 2, "TAX"),
    ]
    runtime.apply_batch(batch(stack.words, *changes))
    runtime.apply_batch(batch(stack.lines, *changes))
    w = meta(stack, stack.words, word)
    assert w["valid_labels"] == ",TOTAL,"
    assert w["invalid_labels"] == ",DATE,"
    assert w["pending_labels"] == ",PRODUCT_NAME,"
    assert w["label_status"] == "validated"
    assert w["label_proposed_by"] == "human"
    assert w["label_validated_at"] == "2026-03-01T00:00:00"
    line_meta = meta(stack, stack.lines, line)
    assert line_meta["valid_labels"] == ",TOTAL,"
    assert line_meta["pending_labels"] == ",PRODUCT_NAME,TAX,"

    # MODIFY: DATE becomes valid.
    stack.table.update_item(
        Key={"PK": image_pk(spec.image_id), "SK": f"{word_sk(spec.receipt_id, 2, 1)}#LABEL#DATE"},
        UpdateExpression="SET validation_status = :v",
        ExpressionAttributeValues={":v": "VALID"},
    )
    runtime.apply_batch(
        batch(stack.words, make_change("RECEIPT_WORD_LABEL", "MODIFY", spec, 2, 1, "DATE"))
    )
    w = meta(stack, stack.words, word)
    assert w["valid_labels"] == ",DATE,TOTAL," and "invalid_labels" not in w

    # REMOVE of one label removes that label only.
    stack.table.delete_item(
        Key={"PK": image_pk(spec.image_id), "SK": f"{word_sk(spec.receipt_id, 2, 1)}#LABEL#TOTAL"}
    )
    removal = make_change("RECEIPT_WORD_LABEL", "REMOVE", spec, 2, 1, "TOTAL")
    runtime.apply_batch(batch(stack.words, removal))
    runtime.apply_batch(batch(stack.lines, removal))
    w = meta(stack, stack.words, word)
    assert w["valid_labels"] == ",DATE,"
    assert w["pending_labels"] == ",PRODUCT_NAME,"
    assert w["label_status"] == "validated"
    line_meta = meta(stack, stack.lines, line)
    assert line_meta["valid_labels"] == ",DATE,"
    assert line_meta["pending_labels"] == ",PRODUCT_NAME,TAX,"


def test_many_labels_of_one_receipt_read_in_one_query_give_the_same_summaries(system) -> None:
    """Four words' labels in one batch: the receipt's labels are read with one Query
    (tasks.sources.LABEL_PREFIXES_PER_RECEIPT_QUERY); the summaries are those the
    per-word reads give, one batch per change."""
    from tasks.sources import LABEL_PREFIXES_PER_RECEIPT_QUERY

    stack, runtime, (spec, _other) = system
    targets = [(1, 2, "TOTAL", "VALID"), (2, 2, "DATE", "INVALID"), (3, 1, "TAX", "VALID")]
    targets.append((3, 2, "TAX", "PENDING"))
    assert len(targets) >= LABEL_PREFIXES_PER_RECEIPT_QUERY
    for lid, wid, name, status in targets:
        stack.table.put_item(Item=label_item(spec, lid, wid, name, status))
    changes = [
        make_change("RECEIPT_WORD_LABEL", "INSERT", spec, lid, wid, name)
        for lid, wid, name, _status in targets
    ]
    words = [word_embedding_id(spec.image_id, spec.receipt_id, t[0], t[1]) for t in targets]
    lines = [line_embedding_id(spec.image_id, spec.receipt_id, lid) for lid in (1, 2, 3)]
    runtime.apply_batch(batch(stack.words, *changes))
    runtime.apply_batch(batch(stack.lines, *changes))
    together = {e: meta(stack, stack.words, e) for e in words}
    together |= {e: meta(stack, stack.lines, e) for e in lines}
    assert together[words[0]]["valid_labels"] == ",TOTAL,"
    assert together[words[1]]["invalid_labels"] == ",DATE,"
    assert together[lines[2]]["valid_labels"] == ",TAX,"
    assert together[lines[2]]["pending_labels"] == ",PRODUCT_NAME,TAX,"
    # Clear the summaries, then apply the same changes one batch each (per-word reads).
    for collection, ids in ((stack.words, words), (stack.lines, lines)):
        cleared = ["valid_labels", "invalid_labels", "pending_labels", "label_status"]
        stack.target.collection(collection).update(
            ids=ids, metadatas=[{k: None for k in cleared} for _ in ids]
        )
    for change in changes:
        runtime.apply_batch(batch(stack.words, change))
        runtime.apply_batch(batch(stack.lines, change))
    one_by_one = {e: meta(stack, stack.words, e) for e in words}
    one_by_one |= {e: meta(stack, stack.lines, e) for e in lines}
    assert one_by_one == together


def test_removing_the_last_label_clears_the_summary(system) -> None:
    stack, runtime, (spec, _other) = system
    stack.table.delete_item(
        Key={
            "PK": image_pk(spec.image_id),
            "SK": f"{word_sk(spec.receipt_id, 1, 1)}#LABEL#PRODUCT_NAME",
        }
    )
    runtime.apply_batch(
        batch(stack.words, make_change("RECEIPT_WORD_LABEL", "REMOVE", spec, 1, 1, "PRODUCT_NAME"))
    )
    w = meta(stack, stack.words, word_embedding_id(spec.image_id, spec.receipt_id, 1, 1))
    assert not any(k in w for k in ("valid_labels", "pending_labels", "label_status"))


# -- RECEIPT_LINE / RECEIPT_WORD -----------------------------------------------------------


#: The line entity and the word entity, each with the role of its collection.
LINE_AND_WORD = pytest.mark.parametrize(
    ("entity", "role"), [("RECEIPT_LINE", "lines"), ("RECEIPT_WORD", "words")]
)


def line_or_word(spec: ReceiptSpec, entity: str, line_id: int) -> tuple[str, str, int | None]:
    """(sort key, embedding id, word id) of line ``line_id``, or of that line's word 2."""
    if entity == "RECEIPT_LINE":
        return (
            line_sk(spec.receipt_id, line_id),
            line_embedding_id(spec.image_id, spec.receipt_id, line_id),
            None,
        )
    return (
        word_sk(spec.receipt_id, line_id, 2),
        word_embedding_id(spec.image_id, spec.receipt_id, line_id, 2),
        2,
    )


@LINE_AND_WORD
@pytest.mark.parametrize("event", ["INSERT", "MODIFY"])
def test_line_and_word_insert_modify_set_their_metadata(system, entity, role, event) -> None:
    stack, runtime, (spec, _other) = system
    collection = stack.lines if role == "lines" else stack.words
    sk, eid, word_id = line_or_word(spec, entity, 3)
    stack.table.update_item(
        Key={"PK": image_pk(spec.image_id), "SK": sk},
        UpdateExpression="SET #t = :t, is_noise = :n, confidence = :c",
        ExpressionAttributeNames={"#t": "text"},
        ExpressionAttributeValues={":t": "EDITED", ":n": True, ":c": Decimal("0.5")},
    )
    runtime.apply_batch(batch(collection, make_change(entity, event, spec, 3, word_id)))
    m = meta(stack, collection, eid)
    assert (m["text"], m["is_noise"], m["confidence"]) == ("EDITED", True, 0.5)
    assert m["embedding_status"] == "SUCCESS"
    assert '"width":0.3' in m["bounding_box"]


@LINE_AND_WORD
def test_line_and_word_remove_delete_their_embedding(system, entity, role) -> None:
    stack, runtime, (spec, _other) = system
    collection = stack.lines if role == "lines" else stack.words
    before = receipt_ids(stack, collection, spec)
    sk, eid, word_id = line_or_word(spec, entity, 1)
    stack.table.delete_item(Key={"PK": image_pk(spec.image_id), "SK": sk})
    outcome = runtime.apply_batch(
        batch(collection, make_change(entity, "REMOVE", spec, 1, word_id))
    )
    assert outcome.result.deleted == 1
    assert receipt_ids(stack, collection, spec) == sorted(set(before) - {eid})


def test_remove_of_an_item_that_is_back_in_the_table_deletes_nothing(system) -> None:
    """Current state wins: a stale REMOVE redelivered after a re-insert keeps the embedding."""
    stack, runtime, (spec, _other) = system
    before = receipt_ids(stack, stack.lines, spec)
    outcome = runtime.apply_batch(
        batch(stack.lines, make_change("RECEIPT_LINE", "REMOVE", spec, 1))
    )
    assert outcome.result.deleted == 0
    assert receipt_ids(stack, stack.lines, spec) == before


# -- RECEIPT -------------------------------------------------------------------------------


def test_receipt_remove_deletes_every_embedding_of_the_receipt(system) -> None:
    stack, runtime, (spec, other) = system
    stack.table.delete_item(Key={"PK": image_pk(spec.image_id), "SK": receipt_sk(spec.receipt_id)})
    change = make_change("RECEIPT", "REMOVE", spec)
    for collection in (stack.lines, stack.words):
        others = receipt_ids(stack, collection, other)
        outcome = runtime.apply_batch(batch(collection, change))
        assert outcome.result.deleted > 0
        assert receipt_ids(stack, collection, spec) == []
        assert receipt_ids(stack, collection, other) == others


def test_receipt_remove_while_the_receipt_exists_deletes_nothing(system) -> None:
    stack, runtime, (spec, _other) = system
    before = receipt_ids(stack, stack.words, spec)
    runtime.apply_batch(batch(stack.words, make_change("RECEIPT", "REMOVE", spec)))
    assert receipt_ids(stack, stack.words, spec) == before


# -- coalescing, convergence, missing embeddings, lease ----------------------------------


def test_a_batch_is_one_read_and_one_write_per_chunk(system) -> None:
    stack, runtime, (spec, other) = system
    for index, s in enumerate((spec, other)):
        stack.table.put_item(Item={**metadata_key(s), **merchant_fields(index, 5)})
    changes = [make_change("RECEIPT_METADATA", "MODIFY", s) for s in (spec, other, spec, spec)]
    changes.append(make_change("RECEIPT_WORD", "MODIFY", spec, 1, 1))
    changes.append(make_change("RECEIPT_WORD_LABEL", "INSERT", spec, 1, 1, "PRODUCT_NAME"))
    outcome = runtime.apply_batch(batch(stack.words, *changes))
    ids = receipt_ids(stack, stack.words, spec) + receipt_ids(stack, stack.words, other)
    assert outcome.result.updated == len(ids)  # each id written once
    assert outcome.result.write_calls == 1


def _snapshot(stack: Stack) -> dict[str, Any]:
    out = {}
    for collection in (stack.lines, stack.words):
        got = stack.collection(collection).get(include=["metadatas"])
        out[collection] = dict(zip(got["ids"], got["metadatas"], strict=True))
    return out


def test_duplicates_and_reordering_converge_to_the_table(system) -> None:
    stack, runtime, (spec, other) = system
    changes = []
    for edition in (1, 2, 3):  # three edits; the table ends at edition 3
        stack.table.put_item(Item={**metadata_key(spec), **merchant_fields(0, edition)})
        changes.append(make_change("RECEIPT_METADATA", "MODIFY", spec))
    stack.table.put_item(Item=label_item(spec, 1, 2, "TOTAL", "VALID"))
    changes.append(make_change("RECEIPT_WORD_LABEL", "INSERT", spec, 1, 2, "TOTAL"))
    stack.table.delete_item(
        Key={"PK": image_pk(other.image_id), "SK": word_sk(other.receipt_id, 2, 2)}
    )
    changes.append(make_change("RECEIPT_WORD", "REMOVE", other, 2, 2))
    for collection in (stack.lines, stack.words):
        runtime.apply_batch(batch(collection, *changes))
    expected = _snapshot(stack)
    rng = random.Random(7)
    for _round in range(3):  # replayed, duplicated, shuffled
        shuffled = changes * 3
        rng.shuffle(shuffled)
        for collection in (stack.lines, stack.words):
            runtime.apply_batch(batch(collection, *shuffled))
    assert _snapshot(stack) == expected
    words = expected[stack.words]
    first = word_embedding_id(spec.image_id, spec.receipt_id, 1, 1)
    assert words[first]["merchant_name"] == merchant_fields(0, 3)["merchant_name"]
    assert word_embedding_id(other.image_id, other.receipt_id, 2, 2) not in words


def test_a_change_whose_embedding_is_missing_waits_and_the_rest_applies(system) -> None:
    stack, runtime, (spec, other) = system
    gone = word_embedding_id(spec.image_id, spec.receipt_id, 1, 1)
    stack.collection(stack.words).delete(ids=[gone])
    stack.table.put_item(Item={**metadata_key(other), **merchant_fields(1, 9)})
    changes = [
        make_change("RECEIPT_WORD", "MODIFY", spec, 1, 1),
        make_change("RECEIPT_METADATA", "MODIFY", other),
    ]
    outcome = runtime.apply_batch(batch(stack.words, *changes))
    assert outcome.waiting == {0}
    assert outcome.result.missing == {gone}
    assert outcome.applied == 1
    for eid in receipt_ids(stack, stack.words, other):
        assert (
            meta(stack, stack.words, eid)["merchant_name"] == merchant_fields(1, 9)["merchant_name"]
        )


def test_no_write_after_the_lease_is_lost(system, redis_client: redis.Redis) -> None:
    """The lock is taken over between two write calls: the second call never happens."""
    stack, runtime, (spec, other) = system
    stack.target.max_batch_size = 4  # several write calls for one receipt
    stack.table.put_item(Item={**metadata_key(spec), **merchant_fields(0, 4)})
    lease = runtime.lease(stack.words)
    calls = 0

    def check_then_steal() -> None:
        nonlocal calls
        calls += 1
        if calls == 2:
            # Another worker takes the lock (as after an expiry); the heartbeat learns of it.
            redis_client.set(f"chromasync:lock:{lease.name}", "intruder")
            assert lease.renew() is False
        lease.check()

    with lease:
        states = runtime.reader.read({(spec.image_id, spec.receipt_id): WHOLE_RECEIPT})
        plan = build_plan(
            stack.words,
            CollectionRole.WORDS,
            [make_change("RECEIPT_METADATA", "MODIFY", spec)],
            states,
        )
        with pytest.raises(LeaseLost):
            runtime.writer.apply(plan, check_then_steal)
    names = [
        meta(stack, stack.words, eid)["merchant_name"]
        for eid in receipt_ids(stack, stack.words, spec)
    ]
    new = merchant_fields(0, 4)["merchant_name"]
    assert names.count(new) == 4  # exactly the first chunk, nothing after the loss
    assert len(names) > 4
