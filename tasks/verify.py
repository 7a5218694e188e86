"""Reconcile Chroma against the table: missing and extra embeddings, drifted metadata.

What an embedding's metadata *should* be comes from the same projection the
worker writes with (:mod:`tasks.projection`), so a difference is real drift,
not two opinions. Repairs are changes sent through the normal path (queue,
lock, worker); an embedding that is missing cannot be rebuilt from the table
(there is no vector there) and is reported for the embedding job to redo.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from chromasync.core.contract import Change, ChangeBatch
from chromasync.core.entities import (
    REGISTRY,
    CollectionRole,
    Effect,
    EntitySpec,
    RecognisedKey,
    recognise,
)
from tasks.chroma.target import ChromaTarget
from tasks.effects import label_owner
from tasks.projection import LABEL_SUMMARY_KEYS, Metadata, expected_embeddings
from tasks.sources import WHOLE_RECEIPT, ReceiptKey, ReceiptState, TableReader

#: Embeddings read from Chroma per ``get`` call while scanning a collection.
SCAN_PAGE = 1000


@dataclass(frozen=True)
class Drift:
    collection: str
    embedding_id: str
    kind: str  # missing | extra | metadata
    fields: tuple[str, ...] = ()
    detail: str = ""


@dataclass
class VerifyReport:
    receipts: int = 0
    embeddings_checked: int = 0
    drift: list[Drift] = field(default_factory=list)
    repairs_sent: int = 0

    @property
    def clean(self) -> bool:
        return not self.drift

    def count(self, kind: str) -> int:
        return sum(1 for d in self.drift if d.kind == kind)


def differing_fields(expected: Metadata, actual: Metadata) -> tuple[str, ...]:
    return tuple(sorted(k for k, v in expected.items() if actual.get(k) != v))


class Verifier:
    def __init__(
        self,
        reader: TableReader,
        target: ChromaTarget,
        collections: dict[CollectionRole, str],
    ) -> None:
        """``collections`` maps each role to check to its collection's name."""
        self.reader = reader
        self.target = target
        self.collections = collections

    def _scan_collection(self, name: str) -> Iterator[tuple[str, Metadata]]:
        collection = self.target.collection(name)
        for offset in itertools.count(0, SCAN_PAGE):
            page = collection.get(include=["metadatas"], limit=SCAN_PAGE, offset=offset)
            yield from zip(page["ids"], page["metadatas"], strict=True)
            if len(page["ids"]) < SCAN_PAGE:
                return

    def _actual(self, name: str, key: ReceiptKey) -> dict[str, Metadata]:
        where = {"$and": [{"image_id": key[0]}, {"receipt_id": key[1]}]}
        got = self.target.collection(name).get(where=where, include=["metadatas"])
        return dict(zip(got["ids"], got["metadatas"], strict=True))

    def verify(
        self, image_id: str | None = None, receipt_id: int | None = None
    ) -> tuple[VerifyReport, dict[ReceiptKey, ReceiptState]]:
        report = VerifyReport()
        keys = self.reader.receipts(image_id)
        if receipt_id is not None:
            keys = [k for k in keys if k[1] == receipt_id]
        states = self.reader.read(dict.fromkeys(keys, WHOLE_RECEIPT))
        report.receipts = len(states)
        for role, name in self.collections.items():
            for key, state in states.items():
                expected = expected_embeddings(state, role)
                actual = self._actual(name, key)
                report.embeddings_checked += len(actual)
                for eid in sorted(set(expected) - set(actual)):
                    report.drift.append(Drift(name, eid, "missing"))
                for eid in sorted(set(actual) - set(expected)):
                    report.drift.append(Drift(name, eid, "extra", detail="not in the table"))
                for eid in sorted(set(expected) & set(actual)):
                    fields = differing_fields(expected[eid], actual[eid])
                    if fields:
                        detail = ", ".join(
                            f"{f}: chroma {actual[eid].get(f)!r} != table {expected[eid][f]!r}"
                            for f in fields[:3]
                        )
                        report.drift.append(Drift(name, eid, "metadata", fields, detail))
            if image_id is None and receipt_id is None:
                # Embeddings of receipts the table no longer has at all.
                for eid, meta in self._scan_collection(name):
                    key = (str(meta.get("image_id")), int(meta.get("receipt_id", -1)))
                    if key not in states:
                        report.embeddings_checked += 1
                        report.drift.append(
                            Drift(name, eid, "extra", detail="receipt not in table")
                        )
        return report, states


def _owner_of(embedding_id: str) -> RecognisedKey | None:
    """The item an embedding belongs to (``IMAGE#{image_id}#`` and its sort key), if ours."""
    parts = embedding_id.split("#", 2)
    if len(parts) != 3:
        return None
    found = recognise(f"{parts[0]}#{parts[1]}", parts[2])
    return found if found is not None and found.spec.effect is Effect.EMBEDDED else None


def _label_keys(
    label: EntitySpec, owner: RecognisedKey, state: ReceiptState | None
) -> dict[str, Any]:
    """Keys of a change of one of the owner's labels: a label it has, else placeholders
    (the effect rebuilds the owner's summary from every label it has, whatever the keys)."""
    owner_key = owner.spec.item_key(owner.keys)
    for item in state.under(label, owner_key) if state is not None else []:
        found = recognise(str(item.get("PK", "")), str(item.get("SK", "")))
        if found is not None:
            return dict(found.keys)
    placeholders = {n: 0 if n in label.int_keys else "_verify" for n in label.item_keys}
    return {**placeholders, **owner.keys}


def _written_fields(spec: EntitySpec, owner: EntitySpec, role: CollectionRole) -> frozenset[str]:
    """The metadata fields ``spec``'s changes write on an embedding of ``owner``."""
    if spec.effect is Effect.EMBEDDED and spec is owner:
        return frozenset(spec.monitored_fields)
    if spec.effect is Effect.RECEIPT_FIELDS and role in spec.roles:
        return frozenset(spec.monitored_fields)
    if spec.effect is Effect.LABELS and label_owner(spec, role) is owner:
        return frozenset(LABEL_SUMMARY_KEYS)
    return frozenset()


def _repairs(drift: Drift, owner: RecognisedKey, state: ReceiptState | None) -> Iterator[Repair]:
    """The changes that make the worker rewrite an embedding's drifted fields."""
    keys = dict(owner.keys)
    if drift.kind == "extra":
        yield owner.spec.entity_type, "REMOVE", keys
        return
    role = owner.spec.roles[0]
    for spec in REGISTRY:
        if not set(drift.fields) & _written_fields(spec, owner.spec, role):
            continue
        if spec.effect is Effect.LABELS:
            yield spec.entity_type, "MODIFY", _label_keys(spec, owner, state)
        else:  # the embedded item itself, or the receipt's one item
            yield spec.entity_type, "MODIFY", {name: keys[name] for name in spec.keys}


#: A repair: the entity, the event and the keys of the change that makes it.
Repair = tuple[str, str, dict[str, Any]]


def repair_changes(
    report: VerifyReport, states: dict[ReceiptKey, ReceiptState], max_changes: int
) -> list[ChangeBatch]:
    """Changes that make the worker rewrite what drifted (current state from the table)."""
    per_collection: dict[str, list[Change]] = {}
    counter = itertools.count(1)
    seen: set[tuple[str, str, str]] = set()
    for drift in report.drift:
        if drift.kind == "missing":
            continue  # no vector in the table: the embedding job must redo it
        owner = _owner_of(drift.embedding_id)
        if owner is None:
            continue  # not an id of ours: reported, nothing a change could repair
        state = states.get((str(owner.keys["image_id"]), int(owner.keys["receipt_id"])))
        for entity, event, keys in _repairs(drift, owner, state):
            key = (drift.collection, entity, repr(sorted(keys.items())))
            if key in seen:
                continue
            seen.add(key)
            per_collection.setdefault(drift.collection, []).append(
                Change(
                    entity_type=entity,
                    event_name=event,  # type: ignore[arg-type]
                    keys=keys,  # type: ignore[arg-type]
                    sequence_number="0",
                    event_id=f"verify-repair-{next(counter)}",
                )
            )
    return [
        ChangeBatch(
            collection=c, changes=changes[i : i + max_changes], producer="chromasync-verify"
        )
        for c, changes in per_collection.items()
        for i in range(0, len(changes), max_changes)
    ]
