"""The receipts dashboard sink: one DynamoDB table, kept as a projection of the source table.

A batch's changes only say which receipts moved. Each receipt is read whole
(one consistent Query), projected (:mod:`.projection`) and written with the
batch's highest sequence number among its changes (:mod:`.store`), so
duplicates, replays and reordering write the same items, and a late change
never overwrites a newer state.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from chromasync.core.contract import Change
from tasks.sinks.backend import (
    LeaseCheck,
    Sink,
    SinkTable,
    SinkWrite,
    WriteJournal,
    no_journal,
)
from tasks.sinks.dashboard.items import Manifest, stored_seq
from tasks.sinks.dashboard.projection import Key, ProjectionError, manifest_key, project
from tasks.sinks.dashboard.settings import DashboardSettings
from tasks.sinks.dashboard.store import DashboardStore
from tasks.sinks.dashboard.table import TABLE_SCHEMA, TTL_ATTRIBUTE, probe
from tasks.sinks.dashboard.verify import (
    REPAIR_EVENT_PREFIX,
    DashboardVerification,
    compare,
)
from tasks.sources import WHOLE_RECEIPT, ReceiptKey, TableReader

if TYPE_CHECKING:
    from tasks.config import WorkerSettings


class DashboardSink(Sink):
    """The ``dashboard`` sink; its one target is also named ``dashboard``."""

    name: ClassVar[str] = "dashboard"

    def __init__(
        self,
        settings: WorkerSettings,
        reader: TableReader | None = None,
        client: Any | None = None,
    ) -> None:
        """``client`` is a boto3 DynamoDB client (default: one from the AWS settings)."""
        import boto3

        self.settings = DashboardSettings.from_settings(settings)
        aws = settings.shared.aws
        self.client = client or boto3.client("dynamodb", **aws.client_kwargs())
        # The dashboard table stays with the other services; the source table may be
        # elsewhere (CHROMASYNC_TABLE_ENDPOINT_URL), and then needs a client of its own.
        table_client = self.client if aws.table_endpoint_url is None else None
        self.reader = reader or TableReader(
            aws.for_table(), self.settings.source_table, table_client
        )
        self.store = DashboardStore(self.client, self.settings.table)

    @classmethod
    def from_settings(cls, settings: WorkerSettings) -> DashboardSink:
        return cls(settings)

    @classmethod
    def check_settings(cls, settings: WorkerSettings) -> None:
        DashboardSettings.from_settings(settings)

    @classmethod
    def probes(
        cls, settings: WorkerSettings, target: str, dynamodb: Any
    ) -> list[tuple[str, Callable[[], None]]]:
        table = DashboardSettings.from_settings(settings).table
        return [("DynamoDB", lambda: probe(dynamodb, table))]

    @classmethod
    def tables(cls, settings: WorkerSettings) -> list[SinkTable]:
        """The dashboard table (PK/SK, on demand, index ``by_receipt``), TTL on ``expires_at``.

        TTL is turned on whatever ``CHROMASYNC_DASHBOARD_TTL_DAYS`` says: items
        without ``expires_at`` never expire, so setting the variable later needs
        no second provisioning.
        """
        table = DashboardSettings.from_settings(settings).table
        return [SinkTable(table, TABLE_SCHEMA, TTL_ATTRIBUTE)]

    def apply(
        self,
        target: str,
        changes: Sequence[Change],
        check_lease: LeaseCheck,
        journal: WriteJournal = no_journal,
    ) -> SinkWrite:
        by_receipt: dict[ReceiptKey, list[int]] = {}
        for index, change in enumerate(changes):
            by_receipt.setdefault(change.receipt_key, []).append(index)
        states = self.reader.read(dict.fromkeys(by_receipt, WHOLE_RECEIPT))
        manifests = self.store.manifests(by_receipt)
        strays = self._strays(
            [r for r, i in by_receipt.items() if any(_is_repair(changes[n]) for n in i)]
        )
        written = SinkWrite()
        for receipt, indices in by_receipt.items():
            seq = stored_seq(max(changes[i].sequence_int for i in indices))
            manifest = manifests.get(receipt)
            if manifest is not None and manifest.seq > seq:
                written.result.superseded += len(indices)  # a newer state is there already
                continue
            try:
                projection = project(states[receipt], self.settings.ttl_days)
            except ProjectionError as exc:
                written.failed.update(dict.fromkeys(indices, exc))
                continue
            stale = _listed(manifest) | strays.get(receipt, set())
            result, superseded = self.store.write(projection, seq, stale, check_lease, journal)
            written.result.add(result)
            if superseded:
                written.result.superseded += len(indices)
        return written

    def _strays(self, receipts: list[ReceiptKey]) -> dict[ReceiptKey, set[Key]]:
        """Every item of the receipts a repair is for, whether a manifest lists it or not.

        One Query per receipt of the ``by_receipt`` index (the worker may not Scan
        the table). The index is eventually consistent, which suits a repair: it
        follows a verify that saw the strays, long enough ago for the index to
        list them. A normal write trusts the manifest and reads no index.
        """
        return {
            receipt: self.store.receipt_keys(receipt) - {manifest_key(receipt)}
            for receipt in receipts
        }

    def verify(
        self, targets: Sequence[str], image_id: str | None = None, receipt_id: int | None = None
    ) -> DashboardVerification:
        keys = self.reader.receipts(image_id)
        if receipt_id is not None:
            keys = [k for k in keys if k[1] == receipt_id]
        states = self.reader.read(dict.fromkeys(keys, WHOLE_RECEIPT))
        images = [image_id] if image_id is not None else None
        dashboard = self.store.scan(images, receipt_id)
        target = targets[0] if targets else self.name
        return compare(target, states, dashboard, self.settings.ttl_days)

    def close(self) -> None:
        self.client.close()
        self.reader.close()


def _is_repair(change: Change) -> bool:
    return change.event_id.startswith(REPAIR_EVENT_PREFIX)


def _listed(manifest: Manifest | None) -> set[Key]:
    return set(manifest.keys) if manifest is not None else set()
