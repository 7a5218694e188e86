"""The Chroma sink: each collection is a target; metadata patches, deletes and delta merges.

Its parts are the modules the worker had before sinks existed: what each
entity's change means for an embedding (:mod:`tasks.effects`, planned by
:mod:`tasks.plan` from the state :mod:`tasks.sources` reads), the writer
(:mod:`tasks.writer`) and the run deltas (:mod:`tasks.deltas`); verify is
:mod:`tasks.verify`, snapshots :mod:`tasks.snapshots`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from chromasync.core.contract import Change, ChangeBatch
from tasks.chroma.factory import chroma_target_from_settings
from tasks.chroma.target import ChromaTarget
from tasks.config import WorkerSettings
from tasks.deltas.merger import S3DeltaMerger
from tasks.plan import build_plan, read_scopes
from tasks.sinks.backend import (
    Drift,
    LeaseCheck,
    Sink,
    SinkWrite,
    Verification,
    WriteJournal,
    no_journal,
)
from tasks.sources import ReceiptKey, ReceiptState, TableReader
from tasks.verify import Verifier, VerifyReport, repair_changes
from tasks.writer import ChromaWriter, DeltaMerger


class ChromaVerification(Verification):
    def __init__(self, report: VerifyReport, states: dict[ReceiptKey, ReceiptState]) -> None:
        self.report = report
        self.states = states

    @property
    def drift(self) -> Sequence[Drift]:
        return [
            Drift(d.collection, d.embedding_id, d.kind, d.fields, d.detail)
            for d in self.report.drift
        ]

    def summary(self) -> str:
        report = self.report
        return (
            f"checked {report.receipts} receipts, {report.embeddings_checked} embeddings: "
            f"{report.count('missing')} missing, {report.count('extra')} extra, "
            f"{report.count('metadata')} with drifted metadata"
        )

    def repairs(self, max_changes: int) -> list[ChangeBatch]:
        return repair_changes(self.report, self.states, max_changes)

    def unrepairable(self) -> str | None:
        missing = self.report.count("missing")
        if not missing:
            return None
        return (
            f"{missing} missing embeddings cannot be rebuilt from the table (it holds no "
            "vectors); re-run the embedding job for them"
        )


class ChromaSink(Sink):
    name: ClassVar[str] = "chroma"
    supports_snapshots: ClassVar[bool] = True

    def __init__(
        self,
        settings: WorkerSettings,
        target: ChromaTarget | None = None,
        reader: TableReader | None = None,
        merge_delta: DeltaMerger | None = None,
    ) -> None:
        shared = settings.shared
        self.settings = settings
        self.target = target or chroma_target_from_settings(settings)
        # The source table may be elsewhere than the other services (a stand-in).
        self.reader = reader or TableReader(shared.aws.for_table(), shared.table)
        self.writer = ChromaWriter(self.target, settings.write_chunk)
        self.merge_delta = merge_delta or S3DeltaMerger.from_settings(
            settings, max_batch_size=self.target.max_batch_size
        )

    @classmethod
    def from_settings(cls, settings: WorkerSettings) -> ChromaSink:
        return cls(settings)

    def warm(self, target: str) -> None:
        """Import chromadb and open the collection: about a second of CPU (``import
        chromadb`` alone, BENCHMARKS.md "CPU per embedding") the first task would pay."""
        self.target.collection(target)

    def apply(
        self,
        target: str,
        changes: Sequence[Change],
        check_lease: LeaseCheck,
        journal: WriteJournal = no_journal,
    ) -> SinkWrite:
        role = self.settings.shared.role_of(target)
        batch = list(changes)
        states = self.reader.read(read_scopes(role, batch))
        plan = build_plan(target, role, batch, states)
        result = self.writer.apply(plan, check_lease, self.merge_delta, journal)
        written = SinkWrite(result)
        for missing in result.missing:
            written.waiting.update(plan.wanted_by.get(missing, ()))
        written.waiting |= result.deltas_not_ready
        # Only ids a change waits for are reported (an optional patch's id is not).
        result.missing = {m for m in result.missing if plan.wanted_by.get(m)}
        return written

    def verify(
        self, targets: Sequence[str], image_id: str | None = None, receipt_id: int | None = None
    ) -> ChromaVerification:
        shared = self.settings.shared
        roles = {role: name for role, name in shared.roles.items() if name in targets}
        report, states = Verifier(self.reader, self.target, roles).verify(image_id, receipt_id)
        return ChromaVerification(report, states)

    def close(self) -> None:
        self.target.close()
        self.reader.close()


SINK = ChromaSink
