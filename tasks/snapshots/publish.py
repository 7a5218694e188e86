"""Publishing a snapshot: copy under the lease, pack, upload, verify, promote, then prune.

The order is the whole point:

1. Take the collection's lease (the same lock store and settings as the
   workers) and, for the copy only, the directory's writer file lock: no write
   is in flight, so the copy is the collection at one instant.
2. Check the copy (SQLite, then Chroma opens it), pack it, hash it.
3. Upload the archive under a new version key and verify what S3 holds; then
   write the manifest. Any failure here leaves the pointer untouched and the
   half-made version is deleted.
4. Promote: read the pointer, renew the lease at the lock store (a lease taken
   over is noticed here, not only at the next heartbeat), check it has more than
   the safety margin left, and write the pointer conditionally on what was
   read. A lost lease or a concurrent promotion aborts without promotion.
5. Only after the pointer moved, and after the lease is released, delete the
   versions beyond the newest N (:func:`tasks.snapshots.retention.prune`).

The lease is held from the copy to the promotion so that a writer that lost
it can never promote, as the issue asks; writes wait meanwhile (a worker waits
``CHROMASYNC_LOCK_WAIT`` and then retries the batch later, as for any busy lock).
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from botocore.exceptions import ClientError

from tasks.chroma.target import ChromaTarget
from tasks.chroma.targets.embedded import EmbeddedChromaTarget
from tasks.config import WorkerSettings
from tasks.lease import HeldLease, LeaseLost, lease_for
from tasks.locks.backend import LockBackend
from tasks.snapshots.archive import pack
from tasks.snapshots.capture import copy_chroma_directory, open_check
from tasks.snapshots.errors import (
    PromotionRefused,
    SnapshotStoreUnavailable,
    SnapshotsUnsupported,
    UploadFailed,
)
from tasks.snapshots.layout import ARCHIVE_NAME, Manifest, Pointer, archive_key, version_id
from tasks.snapshots.retention import prune
from tasks.snapshots.store import SnapshotStore

log = logging.getLogger(__name__)

#: Prefix of the temporary folders a publish copies and packs in.
TEMP_PREFIX = "chromasync-snapshot-"

#: Called with the version id at a point of the publish (see :class:`PublishHooks`).
Hook = Callable[[str], None]


def unsupported(settings: WorkerSettings) -> SnapshotsUnsupported:
    """The refusal for a Chroma server target, saying what to use instead."""
    return SnapshotsUnsupported(
        f"snapshots copy an embedded Chroma directory (CHROMASYNC_CHROMA_DIR), but "
        f"CHROMASYNC_CHROMA_URL={settings.chroma_url} points at a Chroma server: back up the "
        "server's own persist directory (its --path / the container volume) instead"
    )


def check_supported(settings: WorkerSettings) -> None:
    """Raise :class:`SnapshotsUnsupported` when the target is a Chroma server."""
    if settings.chroma_url:
        raise unsupported(settings)


@dataclass
class PublishHooks:
    """Points where a caller can act in the middle of a publish (tests inject faults here)."""

    #: After the archive is packed, before its upload starts.
    before_upload: Hook | None = None
    #: After the archive upload, before it is verified.
    after_upload: Hook | None = None
    #: After the upload is verified and the manifest written, right before promotion.
    before_promote: Hook | None = None


@dataclass
class PublishResult:
    collection: str
    version: str
    manifest: Manifest
    #: Seconds spent waiting for the lease.
    lock_wait: float
    #: Seconds writes were held off by the directory's file lock (the copy).
    copy_seconds: float
    #: Seconds the lease was held (copy, checks, pack, upload, promotion).
    lock_hold: float
    #: Versions deleted by retention afterwards.
    pruned: list[str] = field(default_factory=list)
    #: Why retention failed, if it did (the snapshot itself is promoted).
    prune_error: str | None = None


def _now() -> datetime:
    return datetime.now(UTC)


def _chromadb_version() -> str:
    import chromadb  # already imported by the copy check; not at module level (heavy)

    return str(chromadb.__version__)


class SnapshotPublisher:
    """Publishes snapshots of embedded Chroma collections to a :class:`SnapshotStore`."""

    def __init__(
        self,
        settings: WorkerSettings,
        lock_backend: LockBackend,
        target: ChromaTarget,
        store: SnapshotStore,
        work_dir: Path | None = None,
    ) -> None:
        if not isinstance(target, EmbeddedChromaTarget):
            raise unsupported(settings)
        self.settings = settings
        self.lock_backend = lock_backend
        self.target = target
        self.store = store
        #: Where temporary copies go (None: the system's temp dir).
        self.work_dir = work_dir

    def lease(self, collection: str) -> HeldLease:
        return lease_for(self.lock_backend, collection, self.settings)

    def publish(self, collection: str, hooks: PublishHooks | None = None) -> PublishResult:
        """Publish one snapshot of ``collection`` and promote it; see the module docstring.

        Raises :class:`~tasks.lease.LockBusy` when the lease stays busy,
        :class:`UploadFailed` or :class:`PromotionRefused` with the pointer untouched.
        """
        hooks = hooks or PublishHooks()
        # Before the lease: a missing bucket is named without holding writers off.
        self.store.check_bucket()
        if self.work_dir is not None:
            self.work_dir.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=TEMP_PREFIX, dir=self.work_dir))
        try:
            result = self._publish(collection, hooks, staging)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        result.pruned, result.prune_error = self._prune_safely(collection)
        return result

    def _publish(self, collection: str, hooks: PublishHooks, staging: Path) -> PublishResult:
        source = self.target.directory(collection)
        copy = staging / "chroma"
        with self.lease(collection) as held:
            with self.target.writing(collection):
                held.check()
                started = time.monotonic()
                taken_at = _now()
                facts = copy_chroma_directory(source, copy, collection)
                copy_seconds = time.monotonic() - started
            version = version_id(taken_at, held.fence)
            open_check(copy, collection, facts.count, f"copy of {source}")
            sha256, size = pack(copy, staging / ARCHIVE_NAME)
            manifest = Manifest(
                collection=collection,
                version=version,
                created_at=taken_at.isoformat(),
                fence=held.fence,
                sha256=sha256,
                size=size,
                count=facts.count,
                chromadb_version=_chromadb_version(),
            )
            try:
                self._upload(manifest, staging / ARCHIVE_NAME, hooks)
                if hooks.before_promote is not None:
                    hooks.before_promote(version)
                self._promote(held, manifest)
            except BaseException as exc:
                if not self._promoted_despite(collection, version, exc):
                    raise
            lock_hold = time.monotonic() - held.acquired_at
            log.info(
                "published snapshot %s of %s: %d embeddings, %d bytes, sha256 %s "
                "(copy %.3fs, lease held %.2fs)",
                version,
                collection,
                facts.count,
                size,
                sha256,
                copy_seconds,
                lock_hold,
            )
            return PublishResult(
                collection=collection,
                version=version,
                manifest=manifest,
                lock_wait=held.waited,
                copy_seconds=copy_seconds,
                lock_hold=lock_hold,
            )

    def _upload(self, manifest: Manifest, archive: Path, hooks: PublishHooks) -> None:
        collection, version = manifest.collection, manifest.version
        try:
            if hooks.before_upload is not None:
                hooks.before_upload(version)
            self.store.upload_archive(collection, version, archive, manifest.sha256, manifest.size)
            if hooks.after_upload is not None:
                hooks.after_upload(version)
            self.store.verify_archive(collection, version, manifest.sha256, manifest.size)
            self.store.put_manifest(manifest)
        except UploadFailed as exc:
            raise UploadFailed(
                f"snapshot {version} of {collection!r}: {exc}; not promoted"
            ) from exc
        except (ClientError, SnapshotStoreUnavailable) as exc:
            where = self.store.url(archive_key(collection, version))
            raise UploadFailed(
                f"upload of snapshot {version} of {collection!r} to {where} failed: {exc}; "
                "not promoted, the pointer is untouched"
            ) from exc

    def _promote(self, held: HeldLease, manifest: Manifest) -> None:
        collection, version = manifest.collection, manifest.version
        current, etag = self.store.read_pointer(collection)
        # A round trip to the lock store: a lease taken over since the last
        # heartbeat is noticed now, not a third of the TTL later.
        held.renew()
        try:
            held.check()
        except LeaseLost as exc:
            latest = current.version if current else "none"
            raise PromotionRefused(
                f"snapshot {version} of {collection!r} not promoted: {exc}; latest stays {latest}"
            ) from exc
        pointer = Pointer(
            version=version,
            sha256=manifest.sha256,
            size=manifest.size,
            fence=manifest.fence,
            promoted_at=_now().isoformat(),
        )
        self.store.write_pointer(collection, pointer, etag)

    def _promoted_despite(self, collection: str, version: str, error: BaseException) -> bool:
        """After a failure: did the pointer get written anyway? Otherwise delete the version.

        A pointer write whose answer was lost (a timeout) may still have landed;
        the version must then stay. So the pointer is read again: naming this
        version means promoted (True); naming another one, the version is deleted
        (best effort; retention deletes leftovers later); unreadable, it is left alone.
        """
        try:
            pointer, _etag = self.store.read_pointer(collection)
        except Exception as exc:  # noqa: BLE001 - the original failure is what matters
            log.warning(
                "cannot tell whether snapshot %s of %s was promoted (%s); leaving it",
                version,
                collection,
                exc,
            )
            return False
        if pointer is not None and pointer.version == version:
            log.warning(
                "promotion of snapshot %s of %s reported %s: %s, yet the pointer names it",
                version,
                collection,
                type(error).__name__,
                error,
            )
            return True
        try:
            self.store.delete_version(collection, version)
        except Exception as exc:  # noqa: BLE001 - the original failure is what matters
            log.warning(
                "could not delete unpromoted snapshot %s of %s: %s", version, collection, exc
            )
        return False

    def _prune_safely(self, collection: str) -> tuple[list[str], str | None]:
        try:
            return prune(self.store, collection, self.settings.snapshot_keep), None
        except Exception as exc:  # noqa: BLE001 - the snapshot is promoted; pruning can wait
            log.warning(
                "retention of %s snapshots failed (next publish retries): %s", collection, exc
            )
            return [], f"{type(exc).__name__}: {exc}"
