"""Planning: a batch of changes plus the table's current state become one write plan.

Each change adds to the plan what its entity's effect means for one collection
(:mod:`tasks.effects`). Patches for the same embedding are merged, so several
changes to one id become one write. Every planned write remembers which
changes asked for it, so a write that cannot happen (its embedding does not
exist yet) sends exactly those changes back for a retry. Before that, each
change says what of its receipt its effect reads (:func:`read_scopes`), so the
worker reads only that (:meth:`tasks.sources.TableReader.read`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from chromasync.core.contract import Change
from chromasync.core.entities import CollectionRole
from tasks.effects import APPLY, READS, PlannedMerge
from tasks.projection import Metadata
from tasks.sources import ReadScope, ReceiptKey, ReceiptState


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


def read_scopes(role: CollectionRole, changes: list[Change]) -> dict[ReceiptKey, ReadScope]:
    """Per receipt, what the batch's effects read of it (the whole receipt when any needs it)."""
    scopes: dict[ReceiptKey, ReadScope] = {}
    for change in changes:
        scope = READS[change.spec.effect](change, role)
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
        APPLY[change.spec.effect](plan, change, states[change.receipt_key], index)
    # An embedding deleted by the batch gets no update.
    for embedding_id in plan.deletes:
        plan.updates.pop(embedding_id, None)
        plan.wanted_by.pop(embedding_id, None)
    return plan
