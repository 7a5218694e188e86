"""Planning: a batch of changes plus the table's current state become one write plan.

Each entity type has one *effect* function (looked up in :data:`EFFECTS`)
that adds to the plan what its change means for one collection. Patches for
the same embedding are merged, so several changes to one id become one write.
Every planned write remembers which changes asked for it, so a write that
cannot happen (its embedding does not exist yet) sends exactly those changes
back for a retry.

Each entity type also says, in :data:`READS`, which part of its receipt its
effect looks at (the whole receipt, its own item, or a word's or a line's
labels), so the worker reads only that (:func:`read_scopes`,
:meth:`tasks.sources.TableReader.read`). A new entity type needs an entry in
both tables; one missing from :data:`READS` reads the whole receipt.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from chromasync.core.contract import Change
from chromasync.core.entities import (
    CollectionRole,
    EntityType,
    line_embedding_id,
    line_sk,
    receipt_sk,
    word_embedding_id,
    word_sk,
)
from tasks.projection import (
    Metadata,
    expected_embeddings,
    label_summary,
    merchant_patch,
    text_patch,
)
from tasks.sources import WHOLE_RECEIPT, ReadScope, ReceiptKey, ReceiptState


@dataclass(frozen=True)
class PlannedMerge:
    """A run's delta to merge, and the embeddings its receipt has in the table now.

    Only those ids of the delta are merged: a line or word deleted from the
    table before its run was merged (a retried merge, a REMOVE read first) must
    not come back with it.
    """

    change: Change
    keep: frozenset[str]
    #: The change's index in the planned batch.
    index: int


@dataclass
class WritePlan:
    collection: str
    role: CollectionRole
    updates: dict[str, Metadata] = field(default_factory=dict)
    deletes: set[str] = field(default_factory=set)
    delete_receipts: set[ReceiptKey] = field(default_factory=set)
    merges: list[PlannedMerge] = field(default_factory=list)
    #: Change indices behind each planned update (for missing embeddings).
    wanted_by: dict[str, set[int]] = field(default_factory=dict)

    def update(
        self, embedding_id: str, patch: Metadata, change_index: int, required: bool = True
    ) -> None:
        """Plan a metadata patch; a ``required`` one waits for a missing embedding."""
        self.updates.setdefault(embedding_id, {}).update(patch)
        wanted = self.wanted_by.setdefault(embedding_id, set())
        if required:
            wanted.add(change_index)

    @property
    def empty(self) -> bool:
        return not (self.updates or self.deletes or self.delete_receipts or self.merges)


def _embedding_id(role: CollectionRole, image_id: str, rid: int, lid: int, wid: int) -> str:
    if role is CollectionRole.LINES:
        return line_embedding_id(image_id, rid, lid)
    return word_embedding_id(image_id, rid, lid, wid)


def _metadata_effect(plan: WritePlan, change: Change, state: ReceiptState, index: int) -> None:
    patch = merchant_patch(state.metadata)
    k = change.keys
    if plan.role is CollectionRole.LINES:
        targets = [line_embedding_id(k.image_id, k.receipt_id, lid) for lid in state.lines]
    else:
        targets = [
            word_embedding_id(k.image_id, k.receipt_id, lid, wid) for lid, wid in state.words
        ]
    for target in targets:
        plan.update(target, patch, index)


def _label_effect(plan: WritePlan, change: Change, state: ReceiptState, index: int) -> None:
    """The word's (or its line's) label summary, rebuilt from every label it has now.

    Only for a word or line the table still holds: once it is gone its embedding is
    deleted (or about to be, by its own REMOVE), and a label change must not wait
    for an embedding that will never come back (it used to, until
    ``CHROMASYNC_MISSING_EMBEDDING_TIMEOUT``, then was dead-lettered as missing).
    """
    k = change.keys
    assert k.line_id is not None and k.word_id is not None
    owned = (
        (k.line_id, k.word_id) in state.words
        if plan.role is CollectionRole.WORDS
        else k.line_id in state.lines
    )
    if not owned:
        return
    if plan.role is CollectionRole.WORDS:
        labels = list(state.labels.get((k.line_id, k.word_id), {}).values())
        target = word_embedding_id(k.image_id, k.receipt_id, k.line_id, k.word_id)
    else:
        labels = [
            item
            for (lid, _wid), by_label in state.labels.items()
            if lid == k.line_id
            for item in by_label.values()
        ]
        target = line_embedding_id(k.image_id, k.receipt_id, k.line_id)
    plan.update(target, label_summary(labels), index)


def _text_effect(plan: WritePlan, change: Change, state: ReceiptState, index: int) -> None:
    k = change.keys
    assert k.line_id is not None
    word_id = k.word_id or 0
    item: dict[str, Any] | None
    if change.entity_type is EntityType.RECEIPT_LINE:
        item = state.lines.get(k.line_id)
    else:
        item = state.words.get((k.line_id, word_id))
    target = _embedding_id(plan.role, k.image_id, k.receipt_id, k.line_id, word_id)
    if item is None:
        plan.deletes.add(target)
    else:
        plan.update(target, text_patch(item), index)


def _receipt_effect(plan: WritePlan, change: Change, state: ReceiptState, index: int) -> None:
    if state.receipt is None:
        plan.delete_receipts.add(change.receipt_key)


def _run_effect(plan: WritePlan, change: Change, state: ReceiptState, index: int) -> None:
    """Merge the run's delta, then bring the receipt's embeddings to the table's state.

    The delta carries the metadata the embedding job saw; labels or merchant
    data may have changed since. Those rewrites are optional: an embedding the
    delta did not bring is not waited for. Of the delta, only the embeddings of
    lines or words the table still holds are merged (:class:`PlannedMerge`).
    """
    expected = expected_embeddings(state, plan.role.value)
    plan.merges.append(PlannedMerge(change, frozenset(expected), index))
    for embedding_id, metadata in expected.items():
        plan.update(embedding_id, metadata, index, required=False)


Effect = Callable[[WritePlan, Change, ReceiptState, int], None]
#: What of its receipt a change's effect reads, for one collection.
Reads = Callable[[Change, CollectionRole], ReadScope]


def _own_item(change: Change, role: CollectionRole) -> ReadScope:
    """A line's, a word's or a receipt's own item (all its effect looks at)."""
    k = change.keys
    if change.entity_type is EntityType.RECEIPT_LINE:
        assert k.line_id is not None
        return ReadScope(items=frozenset({line_sk(k.receipt_id, k.line_id)}))
    if change.entity_type is EntityType.RECEIPT_WORD:
        assert k.line_id is not None and k.word_id is not None
        return ReadScope(items=frozenset({word_sk(k.receipt_id, k.line_id, k.word_id)}))
    return ReadScope(items=frozenset({receipt_sk(k.receipt_id)}))


def _label_reads(change: Change, role: CollectionRole) -> ReadScope:
    """Every label of the word (words), or of every word of the line (lines), and the
    word's or line's own item: whether the table still holds what the labels belong to."""
    k = change.keys
    assert k.line_id is not None and k.word_id is not None
    if role is CollectionRole.WORDS:
        owner = word_sk(k.receipt_id, k.line_id, k.word_id)
        prefix = f"{owner}#LABEL#"
    else:
        owner = line_sk(k.receipt_id, k.line_id)
        prefix = f"{owner}#WORD#"
    return ReadScope(items=frozenset({owner}), labels=frozenset({prefix}))


def _whole(change: Change, role: CollectionRole) -> ReadScope:
    return WHOLE_RECEIPT


#: What each entity's change does to a collection; one entry per entity type.
EFFECTS: dict[EntityType, Effect] = {
    EntityType.RECEIPT_METADATA: _metadata_effect,
    EntityType.RECEIPT_WORD_LABEL: _label_effect,
    EntityType.RECEIPT_LINE: _text_effect,
    EntityType.RECEIPT_WORD: _text_effect,
    EntityType.RECEIPT: _receipt_effect,
    EntityType.COMPACTION_RUN: _run_effect,
}


#: What each entity's effect reads of its receipt; one entry per entity type.
READS: dict[EntityType, Reads] = {
    EntityType.RECEIPT_METADATA: _whole,
    EntityType.RECEIPT_WORD_LABEL: _label_reads,
    EntityType.RECEIPT_LINE: _own_item,
    EntityType.RECEIPT_WORD: _own_item,
    EntityType.RECEIPT: _own_item,
    EntityType.COMPACTION_RUN: _whole,
}


def read_scopes(role: CollectionRole, changes: list[Change]) -> dict[ReceiptKey, ReadScope]:
    """Per receipt, what the batch's effects read of it (the whole receipt when any needs it)."""
    scopes: dict[ReceiptKey, ReadScope] = {}
    for change in changes:
        scope = READS.get(change.entity_type, _whole)(change, role)
        key = change.receipt_key
        scopes[key] = scopes[key] | scope if key in scopes else scope
    return scopes


def build_plan(
    collection: str,
    role: CollectionRole,
    changes: list[Change],
    states: dict[ReceiptKey, ReceiptState],
) -> WritePlan:
    plan = WritePlan(collection=collection, role=role)
    for index, change in enumerate(changes):
        EFFECTS[change.entity_type](plan, change, states[change.receipt_key], index)
    # An embedding deleted by the batch gets no update.
    for embedding_id in plan.deletes:
        plan.updates.pop(embedding_id, None)
        plan.wanted_by.pop(embedding_id, None)
    return plan
