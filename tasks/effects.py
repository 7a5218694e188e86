"""What each kind of change does to one collection, and what it reads of its receipt.

One implementation per :class:`~chromasync.core.entities.Effect`; the
registry says which effect each entity has, so an entity is added without
touching this module. Every effect is stated in terms of the table's current
items (:class:`~tasks.sources.ReceiptState`), never of the change's values:
duplicates, replays and reordering converge to the same writes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from chromasync.core.contract import Change
from chromasync.core.entities import CollectionRole, Effect, EntitySpec, specs_with
from tasks.projection import expected_embeddings, fields_patch, label_summary, owner_labels
from tasks.sources import WHOLE_RECEIPT, ReadScope, ReceiptState

if TYPE_CHECKING:
    from tasks.plan import WritePlan


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


def label_owner(label: EntitySpec, role: CollectionRole) -> EntitySpec | None:
    """The embedded entity of ``role`` a label belongs to: the one whose keys its keys extend."""
    for owner in specs_with(Effect.EMBEDDED, role):
        if label.item_keys[: len(owner.item_keys)] == owner.item_keys:
            return owner
    return None


def _key(spec: EntitySpec, change: Change) -> tuple[Any, ...]:
    return spec.item_key(change.keys)


def _embedded(plan: WritePlan, change: Change, state: ReceiptState, index: int) -> None:
    """The item's own fields onto its embedding; the embedding deleted once the item is gone."""
    spec = change.spec
    item = state.item(spec, _key(spec, change))
    target = spec.embedding_id(change.keys)
    if item is None:
        plan.deletes.add(target)
    else:
        plan.update(target, fields_patch(spec, item), index)


def _receipt_fields(plan: WritePlan, change: Change, state: ReceiptState, index: int) -> None:
    """The item's fields onto every embedding of the receipt (cleared once it is gone)."""
    patch = fields_patch(change.spec, state.item(change.spec))
    for owner in specs_with(Effect.EMBEDDED, plan.role):
        for key in state.of(owner):
            plan.update(owner.embedding_id(owner.keys_of(*change.receipt_key, key)), patch, index)


def _labels(plan: WritePlan, change: Change, state: ReceiptState, index: int) -> None:
    """The label summary of the embedding the label belongs to, from every label it has now.

    Only for an owner the table still holds: once it is gone its embedding is
    deleted (or about to be, by its own REMOVE), and a label change must not wait
    for an embedding that will never come back.
    """
    owner = label_owner(change.spec, plan.role)
    if owner is None:
        return
    key = _key(owner, change)
    if state.item(owner, key) is None:
        return
    summary = label_summary(owner_labels(state, plan.role, key))
    plan.update(owner.embedding_id(change.keys), summary, index)


def _receipt(plan: WritePlan, change: Change, state: ReceiptState, index: int) -> None:
    """Every embedding of the receipt deleted, once the receipt is gone."""
    if state.item(change.spec) is None:
        plan.delete_receipts.add(change.receipt_key)


def _delta(plan: WritePlan, change: Change, state: ReceiptState, index: int) -> None:
    """Merge the run's delta, then bring the receipt's embeddings to the table's state.

    The delta carries the metadata the embedding job saw; labels or merchant
    data may have changed since. Those rewrites are optional: an embedding the
    delta did not bring is not waited for. Of the delta, only the embeddings of
    items the table still holds are merged (:class:`PlannedMerge`).
    """
    expected = expected_embeddings(state, plan.role)
    plan.merges.append(PlannedMerge(change, frozenset(expected), index))
    for embedding_id, metadata in expected.items():
        plan.update(embedding_id, metadata, index, required=False)


Apply = Callable[["WritePlan", Change, ReceiptState, int], None]
#: What of its receipt a change's effect reads, for one collection.
Reads = Callable[[Change, CollectionRole], ReadScope]


def _own_item(change: Change, role: CollectionRole) -> ReadScope:
    """The item itself (all its effect looks at)."""
    return ReadScope(items=frozenset({change.spec.sk(change.keys)}))


def _label_reads(change: Change, role: CollectionRole) -> ReadScope:
    """The owner's item and every label under it: whether the table still holds what
    the labels belong to, and all they summarise to."""
    owner = label_owner(change.spec, role)
    if owner is None:
        return WHOLE_RECEIPT
    owner_sk = owner.sk(change.keys)
    return ReadScope(items=frozenset({owner_sk}), labels=frozenset({owner_sk + "#"}))


def _whole(change: Change, role: CollectionRole) -> ReadScope:
    return WHOLE_RECEIPT


#: Each effect's implementation.
APPLY: Final[dict[Effect, Apply]] = {
    Effect.EMBEDDED: _embedded,
    Effect.RECEIPT_FIELDS: _receipt_fields,
    Effect.LABELS: _labels,
    Effect.RECEIPT: _receipt,
    Effect.DELTA: _delta,
}

#: What each effect reads of its receipt.
READS: Final[dict[Effect, Reads]] = {
    Effect.EMBEDDED: _own_item,
    Effect.RECEIPT_FIELDS: _whole,
    Effect.LABELS: _label_reads,
    Effect.RECEIPT: _own_item,
    Effect.DELTA: _whole,
}

assert set(APPLY) == set(READS) == set(Effect), "every effect needs an implementation"
