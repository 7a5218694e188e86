"""The benchmark's receipts and workloads: table writes, each with what Chroma must show after it.

A workload is a list of :class:`TableOp`: one DynamoDB write (a put or a delete)
plus the expectations that say when it is *visible* in Chroma. Every figure the
benchmark reports is counted from these, never assumed: a workload is finished
when every expectation holds.

Targets are chosen without repetition inside one workload (no op overwrites
another's value before it is seen), and values carry the phase's tag, so a later
phase never passes for an earlier one.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

from chromasync.core.keys import (
    image_pk,
    line_embedding_id,
    line_sk,
    receipt_sk,
    word_embedding_id,
    word_sk,
)
from chromasync.seed import ReceiptSpec, merchant_fields, text_item

Role = Literal["lines", "words"]
OpKind = Literal["word_edit", "line_edit", "label", "merchant", "delete_word", "merge"]


@dataclass(frozen=True)
class Expect:
    """One thing Chroma must show: ``key == value``, ``value in key``, or absence."""

    role: Role
    embedding_id: str
    mode: Literal["eq", "contains", "absent"]
    key: str | None = None
    value: Any = None

    def holds(self, metadata: dict[str, Any] | None) -> bool:
        if self.mode == "absent":
            return metadata is None
        if metadata is None:
            return False
        assert self.key is not None
        got = metadata.get(self.key)
        if self.mode == "eq":
            return bool(got == self.value)
        return isinstance(got, str) and str(self.value) in got


@dataclass(frozen=True)
class TableOp:
    """One table write and what it must become in Chroma."""

    kind: OpKind
    #: Item to put (boto3 resource form), or None for a delete.
    put: dict[str, Any] | None
    #: Key to delete, or None for a put.
    delete: dict[str, str] | None
    expects: tuple[Expect, ...]
    #: Where the benchmark polls for the write's visibility (lag sampling).
    probe: Expect | None = None

    @property
    def embeddings(self) -> int:
        """Embeddings this write asks Chroma to change (both collections)."""
        return len(self.expects)

    def probe_only(self) -> TableOp:
        """The same write, expected in its probe's embedding only (one per record)."""
        expects = (self.probe,) if self.probe is not None else ()
        return TableOp(self.kind, self.put, self.delete, expects, self.probe)


def bench_receipts(count: int, first: int = 0) -> list[ReceiptSpec]:
    """Receipts of 54 to 144 embeddings each (9-16 lines of 5-8 words, lines and words).

    A merchant edit touches every one of them, as the issue's mix asks (50-150).
    """
    return [
        ReceiptSpec(
            f"b0000000-0000-4000-8000-{i:012d}",
            1 + i % 3,
            lines=9 + i % 8,
            words_per_line=5 + i % 4,
        )
        for i in range(first, first + count)
    ]


def embeddings_of(spec: ReceiptSpec) -> int:
    return spec.lines + spec.lines * spec.words_per_line


def _merchant_expects(
    spec: ReceiptSpec, word_keys: Iterable[tuple[int, int]], name: str
) -> tuple[Expect, ...]:
    """The merchant name on every line of the receipt and on each of ``word_keys``."""
    lines = [
        Expect(
            "lines",
            line_embedding_id(spec.image_id, spec.receipt_id, lid),
            "eq",
            "merchant_name",
            name,
        )
        for lid in spec.line_ids()
    ]
    words = [
        Expect(
            "words",
            word_embedding_id(spec.image_id, spec.receipt_id, lid, wid),
            "eq",
            "merchant_name",
            name,
        )
        for lid, wid in word_keys
    ]
    return (*lines, *words)


@dataclass
class WorkloadBuilder:
    """Draws workloads over seeded receipts; remembers deletions so no op targets them later."""

    receipts: list[ReceiptSpec]
    seed: int = 7
    deleted: set[tuple[int, int, int]] = field(default_factory=set)
    rng: random.Random = field(init=False)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)

    # -- targets ---------------------------------------------------------------------------

    def _words(self, index: int) -> list[tuple[int, int]]:
        spec = self.receipts[index]
        return [k for k in spec.word_keys() if (index, *k) not in self.deleted]

    def _draw(self, population: int, count: int) -> Iterator[int]:
        """``count`` indices in ``range(population)``, distinct while they last."""
        order: list[int] = []
        for _ in range(count):
            if not order:
                order = list(range(population))
                self.rng.shuffle(order)
            yield order.pop()

    def _word_targets(self, count: int) -> Iterator[tuple[int, int, int]]:
        every = [(i, lid, wid) for i in range(len(self.receipts)) for lid, wid in self._words(i)]
        for n in self._draw(len(every), count):
            yield every[n]

    def _line_targets(self, count: int) -> Iterator[tuple[int, int]]:
        every = [(i, lid) for i, spec in enumerate(self.receipts) for lid in spec.line_ids()]
        for n in self._draw(len(every), count):
            yield every[n]

    # -- ops -------------------------------------------------------------------------------

    def word_edit(self, index: int, lid: int, wid: int, tag: str) -> TableOp:
        spec = self.receipts[index]
        text = f"{tag} w{lid}.{wid}"
        item = text_item(
            image_pk(spec.image_id), word_sk(spec.receipt_id, lid, wid), text, "RECEIPT_WORD"
        )
        eid = word_embedding_id(spec.image_id, spec.receipt_id, lid, wid)
        expect = Expect("words", eid, "eq", "text", text)
        return TableOp("word_edit", item, None, (expect,), expect)

    def line_edit(self, index: int, lid: int, tag: str) -> TableOp:
        spec = self.receipts[index]
        text = f"{tag} line {lid}"
        item = text_item(
            image_pk(spec.image_id), line_sk(spec.receipt_id, lid), text, "RECEIPT_LINE"
        )
        eid = line_embedding_id(spec.image_id, spec.receipt_id, lid)
        expect = Expect("lines", eid, "eq", "text", text)
        return TableOp("line_edit", item, None, (expect,), expect)

    def label(self, index: int, lid: int, wid: int, tag: str) -> TableOp:
        """A new validated label on a word: its summary and its line's summary change."""
        spec = self.receipts[index]
        name = f"{tag.upper()}_{lid}_{wid}"
        item = {
            "PK": image_pk(spec.image_id),
            "SK": f"{word_sk(spec.receipt_id, lid, wid)}#LABEL#{name}",
            "TYPE": "RECEIPT_WORD_LABEL",
            "label": name,
            "reasoning": "benchmark",
            "validation_status": "VALID",
            "label_proposed_by": "bench",
            "timestamp_added": "2026-02-01T00:00:00+00:00",
        }
        marker = f",{name},"
        word = Expect(
            "words",
            word_embedding_id(spec.image_id, spec.receipt_id, lid, wid),
            "contains",
            "valid_labels",
            marker,
        )
        line = Expect(
            "lines",
            line_embedding_id(spec.image_id, spec.receipt_id, lid),
            "contains",
            "valid_labels",
            marker,
        )
        return TableOp("label", item, None, (word, line), word)

    def merchant(self, index: int, edition: int) -> TableOp:
        spec = self.receipts[index]
        fields = merchant_fields(index, edition)
        item = {
            "PK": image_pk(spec.image_id),
            "SK": f"{receipt_sk(spec.receipt_id)}#METADATA",
            "TYPE": "RECEIPT_METADATA",
            **fields,
        }
        expects = _merchant_expects(spec, self._words(index), fields["merchant_name"])
        return TableOp("merchant", item, None, expects, expects[0])

    def delete_word(self, index: int, lid: int, wid: int) -> TableOp:
        spec = self.receipts[index]
        self.deleted.add((index, lid, wid))
        key = {"PK": image_pk(spec.image_id), "SK": word_sk(spec.receipt_id, lid, wid)}
        eid = word_embedding_id(spec.image_id, spec.receipt_id, lid, wid)
        expect = Expect("words", eid, "absent")
        return TableOp("delete_word", None, key, (expect,), expect)

    def merge(
        self, spec: ReceiptSpec, index: int, run_id: str, prefixes: dict[str, str]
    ) -> TableOp:
        """The COMPACTION_RUN INSERT of a staged receipt: its deltas become embeddings."""
        item = {
            "PK": image_pk(spec.image_id),
            "SK": f"{receipt_sk(spec.receipt_id)}#COMPACTION_RUN#{run_id}",
            "TYPE": "COMPACTION_RUN",
            **{f"{role}_delta_prefix": prefix for role, prefix in prefixes.items()},
        }
        expects = _merchant_expects(spec, spec.word_keys(), merchant_fields(index)["merchant_name"])
        return TableOp("merge", item, None, expects, expects[0])

    # -- workloads -------------------------------------------------------------------------

    def single(self, count: int, tag: str) -> list[TableOp]:
        """Label changes, line edits and word edits in equal parts, shuffled."""
        per = -(-count // 3)
        words = self._word_targets(2 * per)
        ops: list[TableOp] = []
        for _ in range(per):
            index, lid, wid = next(words)
            ops.append(self.label(index, lid, wid, tag))
        for index, lid in self._line_targets(per):
            ops.append(self.line_edit(index, lid, tag))
        for _ in range(per):
            index, lid, wid = next(words)
            ops.append(self.word_edit(index, lid, wid, tag))
        self.rng.shuffle(ops)
        return ops[:count]

    def mix(
        self,
        receipts: int,
        edition: int,
        tag: str,
        merges: list[TableOp] | None = None,
        per_receipt: tuple[float, int, int, int] = (0.5, 4, 3, 3),
        deletions: int = 3,
    ) -> list[TableOp]:
        """The realistic mix over ``receipts`` receipts.

        ``per_receipt`` = (merchant edits, label changes, line edits, word edits) per
        receipt; plus ``deletions`` word deletions and the given delta merges.
        """
        merchant_rate, labels, lines, words = per_receipt
        chosen = list(range(len(self.receipts)))
        self.rng.shuffle(chosen)
        merchant_receipts = chosen[: max(1, round(receipts * merchant_rate))]
        ops = [self.merchant(i, edition) for i in merchant_receipts]
        targets = self._word_targets(receipts * (labels + words) + deletions)
        for _ in range(receipts * labels):
            ops.append(self.label(*next(targets), tag))
        for _ in range(receipts * words):
            ops.append(self.word_edit(*next(targets), tag))
        for index, lid in self._line_targets(receipts * lines):
            ops.append(self.line_edit(index, lid, tag))
        doomed = [next(targets) for _ in range(deletions)]
        self.rng.shuffle(ops)
        # Deletions and merges go last-ish but not last: spread into the final half.
        tail = [self.delete_word(*d) for d in doomed] + list(merges or [])
        for op in tail:
            ops.insert(self.rng.randrange(len(ops) // 2, len(ops) + 1), op)
        return _without_stale(ops)


def _without_stale(ops: list[TableOp]) -> list[TableOp]:
    """Drop expectations a later op in the same workload contradicts (a deleted word).

    A merchant edit expects every word of its receipt to carry the new name; if one
    of those words is deleted later in the workload, it is expected absent instead.
    """
    absent = {(e.role, e.embedding_id) for op in ops for e in op.expects if e.mode == "absent"}
    if not absent:
        return ops
    out = []
    for op in ops:
        if op.kind == "delete_word":
            out.append(op)
            continue
        kept = tuple(e for e in op.expects if (e.role, e.embedding_id) not in absent)
        probe = op.probe if op.probe in kept else (kept[0] if kept else None)
        out.append(TableOp(op.kind, op.put, op.delete, kept, probe))
    return out


def final_expectations(ops: list[TableOp]) -> dict[tuple[Role, str], list[Expect]]:
    """Every expectation of a workload by embedding (later writes of one key win)."""
    by_id: dict[tuple[Role, str], dict[tuple[str, ...], Expect]] = {}
    for op in ops:
        for e in op.expects:
            slot = by_id.setdefault((e.role, e.embedding_id), {})
            if e.mode == "absent":
                slot.clear()
            # One value per key for "eq"; every marker of "contains" must hold.
            name = (e.mode, str(e.key)) if e.mode != "contains" else (e.mode, str(e.key), e.value)
            slot[name] = e
    return {k: list(v.values()) for k, v in by_id.items()}
