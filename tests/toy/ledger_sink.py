"""A third sink, as a developer would add one: the whole module ``tasks/sinks/ledger.py``.

tests/test_toy_sink.py copies the tree, writes this file to the copy's
``tasks/sinks/ledger.py`` and one entry into its ``chromasync/core/sinks.py``;
nothing else changes. The ledger keeps, in a Redis hash per receipt, how many
lines the receipt has in the table now (``CHROMASYNC_LEDGER_URL``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import redis

from chromasync.core.config import env_str
from chromasync.core.contract import Change, ChangeBatch
from chromasync.core.entities import SPECS_BY_TYPE, EntityType
from tasks.config import WorkerSettings
from tasks.sinks.backend import (
    Drift,
    LeaseCheck,
    Sink,
    SinkWrite,
    Verification,
    WriteJournal,
    no_journal,
)
from tasks.sources import WHOLE_RECEIPT, ReceiptKey, ReceiptState, TableReader

#: Redis key of a receipt's ledger entry.
KEY = "chromasync:ledger:{image_id}#{receipt_id:05d}"
LINES = SPECS_BY_TYPE[EntityType.RECEIPT_LINE]
RECEIPT = SPECS_BY_TYPE[EntityType.RECEIPT]


def line_count(state: ReceiptState) -> int | None:
    """The receipt's lines now; None once the receipt is gone."""
    if state.item(RECEIPT) is None:
        return None
    return len(state.of(LINES))


class LedgerVerification(Verification):
    def __init__(self, drift: list[Drift], checked: int) -> None:
        self._drift = drift
        self.checked = checked

    @property
    def drift(self) -> Sequence[Drift]:
        return self._drift

    def summary(self) -> str:
        return f"checked {self.checked} receipts: {len(self._drift)} ledger entries differ"

    def repairs(self, max_changes: int) -> list[ChangeBatch]:
        changes = []
        for number, drift in enumerate(self._drift):
            image_id, receipt_id = drift.key.split("#")
            changes.append(
                Change(
                    entity_type="RECEIPT",
                    event_name="MODIFY",
                    keys={"image_id": image_id, "receipt_id": int(receipt_id)},  # type: ignore[arg-type]
                    sequence_number="0",
                    event_id=f"ledger-repair-{number}",
                )
            )
        return [ChangeBatch(collection="ledger", changes=changes)] if changes else []


class LedgerSink(Sink):
    name: ClassVar[str] = "ledger"

    def __init__(self, settings: WorkerSettings) -> None:
        shared = settings.shared
        url = env_str(settings.sink_env, "CHROMASYNC_LEDGER_URL", "redis://127.0.0.1:6379/0")
        self.redis: Any = redis.Redis.from_url(url)
        self.reader = TableReader(shared.aws, shared.table)

    @classmethod
    def from_settings(cls, settings: WorkerSettings) -> LedgerSink:
        return cls(settings)

    def entry(self, key: ReceiptKey) -> int | None:
        raw = self.redis.hget(KEY.format(image_id=key[0], receipt_id=key[1]), "lines")
        return None if raw is None else int(raw)

    def apply(
        self,
        target: str,
        changes: Sequence[Change],
        check_lease: LeaseCheck,
        journal: WriteJournal = no_journal,
    ) -> SinkWrite:
        receipts = {change.receipt_key for change in changes}
        states = self.reader.read(dict.fromkeys(receipts, WHOLE_RECEIPT))
        written = SinkWrite()
        for key, state in sorted(states.items()):
            name = KEY.format(image_id=key[0], receipt_id=key[1])
            count = line_count(state)
            check_lease()
            if count is None:
                written.result.deleted += self.redis.delete(name)
            else:
                self.redis.hset(name, "lines", count)
                written.result.updated += 1
            written.result.write_calls += 1
        return written

    def verify(
        self, targets: Sequence[str], image_id: str | None = None, receipt_id: int | None = None
    ) -> LedgerVerification:
        keys = self.reader.receipts(image_id)
        states = self.reader.read(dict.fromkeys(keys, WHOLE_RECEIPT))
        drift = [
            Drift("ledger", f"{key[0]}#{key[1]}", "differs", ("lines",))
            for key, state in sorted(states.items())
            if self.entry(key) != line_count(state)
        ]
        return LedgerVerification(drift, len(states))

    def close(self) -> None:
        self.redis.close()


SINK = LedgerSink
