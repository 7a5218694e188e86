"""Reconcile the dashboard table against the source table: missing, extra, differing items.

What a receipt's items *should* be is the same projection the sink writes
with (:func:`~tasks.sinks.dashboard.projection.project`). A repair is one
change per drifted receipt, sent through the normal path, at the highest
sequence number the receipt's items and manifest hold (so the writes'
conditions pass): the worker then writes the receipt's current state and
deletes every item of it that the projection does not have (it looks for
strays, items no manifest lists, in the ``by_receipt`` index when applying a
repair). An extra item without the index's ``receipt`` attribute (written
before the index existed, or by hand) is out of a repair's sight: verify says
so (:meth:`DashboardVerification.unrepairable`).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Final

from chromasync.core.contract import Change, ChangeBatch
from chromasync.core.entities import EntityType
from tasks.sinks.backend import Drift, Verification
from tasks.sinks.dashboard.items import parse_manifest
from tasks.sinks.dashboard.projection import (
    Key,
    ProjectionError,
    manifest_key,
    project,
    receipt_ref,
)
from tasks.sinks.dashboard.table import RECEIPT_ATTRIBUTE, RECEIPT_INDEX
from tasks.sources import ReceiptKey, ReceiptState

#: Event ids of repairs start so: the sink then also deletes items no manifest lists.
REPAIR_EVENT_PREFIX: Final = "verify-repair-"
#: The producer named on repair batches.
REPAIR_PRODUCER: Final = "chromasync-verify"
#: Item attributes never compared: ``seq`` says when an item was written, not what it says.
IGNORED_FIELDS: Final = frozenset({"seq"})


def item_id(key: Key) -> str:
    """A dashboard item's key as verify shows it."""
    return f"{key[0]}|{key[1]}"


def receipt_of(item: dict[str, Any]) -> ReceiptKey | None:
    """The receipt a dashboard item belongs to, from its attributes (None: not ours)."""
    image_id, receipt_id = item.get("image_id"), item.get("receipt_id")
    if not isinstance(image_id, str) or receipt_id is None:
        return None
    try:
        return (image_id, int(receipt_id))
    except (TypeError, ValueError):
        return None


def _shown(value: Any) -> str:
    """A value for a drift's detail (numbers as DynamoDB writes them, not ``Decimal('3')``)."""
    return str(value) if isinstance(value, Decimal) else repr(value)


def differing(expected: dict[str, Any], actual: dict[str, Any]) -> tuple[str, ...]:
    names = (set(expected) | set(actual)) - IGNORED_FIELDS
    return tuple(sorted(n for n in names if expected.get(n) != actual.get(n)))


@dataclass
class DashboardVerification(Verification):
    """One verify run of the dashboard table."""

    target: str
    receipts: int = 0
    items_checked: int = 0
    found: list[Drift] = field(default_factory=list)
    #: Per drifted receipt: the repair's entity, event and sequence number.
    to_repair: dict[ReceiptKey, tuple[str, str, str]] = field(default_factory=dict)
    #: Extra items of a receipt the ``by_receipt`` index does not list under it
    #: (no or another ``receipt`` attribute): its repair cannot find them.
    unindexed: list[Key] = field(default_factory=list)

    @property
    def drift(self) -> Sequence[Drift]:
        return self.found

    def count(self, kind: str) -> int:
        return sum(1 for d in self.found if d.kind == kind)

    def summary(self) -> str:
        line = (
            f"checked {self.receipts} receipts, {self.items_checked} dashboard items: "
            f"{self.count('missing')} missing, {self.count('extra')} extra, "
            f"{self.count('differs')} differing"
        )
        if self.count("manifest"):
            line += f", {self.count('manifest')} manifests out of date"
        if self.count("bad"):
            line += f", {self.count('bad')} receipts not projectable"
        return line

    def repairs(self, max_changes: int) -> list[ChangeBatch]:
        counter = itertools.count(1)
        changes = [
            Change(
                entity_type=entity,
                event_name=event,  # type: ignore[arg-type]
                keys={"image_id": image_id, "receipt_id": receipt_id},  # type: ignore[arg-type]
                sequence_number=seq,
                event_id=f"{REPAIR_EVENT_PREFIX}{next(counter)}",
            )
            for (image_id, receipt_id), (entity, event, seq) in sorted(self.to_repair.items())
        ]
        return [
            ChangeBatch(
                collection=self.target,
                changes=changes[i : i + max_changes],
                producer=REPAIR_PRODUCER,
            )
            for i in range(0, len(changes), max_changes)
        ]

    def unrepairable(self) -> str | None:
        said: list[str] = []
        bad = [d for d in self.found if d.kind == "bad"]
        if bad:
            said.append(
                f"{len(bad)} receipts cannot be projected until their items in the table are "
                f"fixed, e.g. {bad[0].detail}"
            )
        if self.unindexed:
            said.append(
                f"{len(self.unindexed)} extra items lack the {RECEIPT_ATTRIBUTE!r} attribute "
                f"of index {RECEIPT_INDEX!r}, so a repair cannot find them; delete them by "
                f"hand, e.g. {item_id(self.unindexed[0])}"
            )
        return "; ".join(said) or None


def _repair_seq(manifest: dict[str, Any] | None, held: dict[Key, dict[str, Any]]) -> str:
    """The highest ``seq`` of the receipt's manifest and items (0 when none has one).

    The repair is written at it, so every ``seq <= :seq`` condition holds: the
    manifest's alone would not do when the manifest itself is what was lost.
    """
    items = [*held.values(), *([manifest] if manifest is not None else [])]
    seqs = [str(i.get("seq", "")) for i in items]
    return str(max((int(seq) for seq in seqs if seq.isdigit()), default=0))


def compare(
    target: str,
    states: dict[ReceiptKey, ReceiptState],
    dashboard: list[dict[str, Any]],
    ttl_days: int,
) -> DashboardVerification:
    """The drift between the receipts' projections and the dashboard items given."""
    report = DashboardVerification(target, receipts=len(states))
    actual: dict[ReceiptKey | None, dict[Key, dict[str, Any]]] = {}
    manifests: dict[ReceiptKey, dict[str, Any]] = {}
    for item in dashboard:
        receipt = receipt_of(item)
        key = (str(item["PK"]), str(item["SK"]))
        if receipt is not None and key == manifest_key(receipt):
            manifests[receipt] = item
            continue
        report.items_checked += 1
        actual.setdefault(receipt, {})[key] = item
    for receipt, state in sorted(states.items()):
        held = actual.pop(receipt, {})
        try:
            expected = project(state, ttl_days).items
        except ProjectionError as exc:
            # What it holds stays as it is until the table's item is fixed.
            where = f"RECEIPT#{receipt_ref(receipt)}"
            report.found.append(Drift(target, where, "bad", (), str(exc)))
            continue
        drifts = _item_drift(target, expected, held)
        manifest = manifests.get(receipt)
        listed = parse_manifest(manifest).keys if manifest is not None else frozenset()
        report.unindexed.extend(_unindexed(receipt, held, set(expected) | listed))
        # Reported only when the items agree: otherwise it is out of date with them.
        if not drifts and (manifest is not None or expected) and listed != set(expected):
            detail = f"lists {len(listed)} items, the projection has {len(expected)}"
            drifts.append(Drift(target, item_id(manifest_key(receipt)), "manifest", (), detail))
        if drifts:
            report.found.extend(drifts)
            report.to_repair[receipt] = (
                EntityType.RECEIPT_METADATA,
                "MODIFY",
                _repair_seq(manifest, held),
            )
    # What is left belongs to receipts the table does not hold (any more).
    for receipt, held in sorted(actual.items(), key=lambda kv: str(kv[0])):
        for key in sorted(held):
            detail = "receipt not in the table" if receipt else "not an item of any receipt"
            report.found.append(Drift(target, item_id(key), "extra", (), detail))
        if receipt is not None:
            manifest = manifests.get(receipt)
            listed = parse_manifest(manifest).keys if manifest is not None else frozenset()
            report.unindexed.extend(_unindexed(receipt, held, set(listed)))
            report.to_repair[receipt] = (
                EntityType.RECEIPT,
                "REMOVE",
                _repair_seq(manifests.get(receipt), held),
            )
    for receipt, manifest in sorted(manifests.items()):
        if receipt in states or receipt in report.to_repair:
            continue
        if not parse_manifest(manifest).removed:
            detail = "receipt not in the table, manifest not a tombstone"
            where = item_id(manifest_key(receipt))
            report.found.append(Drift(target, where, "manifest", (), detail))
            report.to_repair[receipt] = (EntityType.RECEIPT, "REMOVE", _repair_seq(manifest, {}))
    return report


def _unindexed(
    receipt: ReceiptKey, held: dict[Key, dict[str, Any]], kept_or_listed: set[Key]
) -> list[Key]:
    """The extra items of ``receipt`` that neither its manifest nor the index lists.

    A repair deletes the extra items the manifest lists and those the
    ``by_receipt`` index lists under the receipt: an item in neither stays,
    whatever the worker does. ``kept_or_listed``: the projection's keys and the
    manifest's.
    """
    ref = receipt_ref(receipt)
    return [
        key for key in sorted(set(held) - kept_or_listed) if held[key].get(RECEIPT_ATTRIBUTE) != ref
    ]


def _item_drift(
    target: str, expected: dict[Key, dict[str, Any]], held: dict[Key, dict[str, Any]]
) -> list[Drift]:
    drifts: list[Drift] = []
    for key in sorted(set(expected) - set(held)):
        drifts.append(Drift(target, item_id(key), "missing"))
    for key in sorted(set(held) - set(expected)):
        drifts.append(Drift(target, item_id(key), "extra", (), "not in the projection"))
    for key in sorted(set(expected) & set(held)):
        fields = differing(expected[key], held[key])
        if fields:
            detail = ", ".join(
                f"{f}: dashboard {_shown(held[key].get(f))} != table {_shown(expected[key].get(f))}"
                for f in fields[:3]
            )
            drifts.append(Drift(target, item_id(key), "differs", fields, detail))
    return drifts
