"""Restoring a snapshot into an empty directory, checked before anything lands there.

The archive is downloaded and extracted into a staging folder next to the
destination, then checked: size and sha256 against the manifest (and the
pointer), safe extraction, SQLite's own check, the collection and its count,
and optionally Chroma opening it. Only then are its entries moved into the
destination, the vector segments first and ``chroma.sqlite3`` last, so a
directory with a ``chroma.sqlite3`` is always a whole snapshot. A refused
snapshot leaves the destination as it was.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from tasks.chroma.persistent import CHROMA_DB_FILE
from tasks.chroma.targets.embedded import WRITER_LOCK_FILE, EmbeddedChromaTarget
from tasks.config import WorkerSettings
from tasks.snapshots.archive import unpack
from tasks.snapshots.capture import inspect_directory, open_check
from tasks.snapshots.errors import CorruptSnapshot, DirectoryNotEmpty, NoSnapshot
from tasks.snapshots.layout import ARCHIVE_NAME, Pointer, archive_key, parse_version
from tasks.snapshots.store import SnapshotStore

log = logging.getLogger(__name__)

#: Entries a directory may hold and still count as empty: the writer's lock file.
IGNORED_ENTRIES = frozenset({WRITER_LOCK_FILE})


@dataclass(frozen=True)
class RestoreResult:
    collection: str
    version: str
    directory: Path
    count: int
    size: int
    sha256: str


def is_empty(directory: Path) -> bool:
    """True when ``directory`` is missing or holds nothing but the writer's lock file."""
    if not directory.exists():
        return True
    return all(entry.name in IGNORED_ENTRIES for entry in directory.iterdir())


def restore_snapshot(
    store: SnapshotStore,
    collection: str,
    destination: Path,
    version: str | None = None,
    open_with_chroma: bool = True,
) -> RestoreResult:
    """Restore ``version`` (default: the promoted one) of ``collection`` into ``destination``.

    ``destination`` must be empty (:func:`is_empty`). ``open_with_chroma=False``
    skips the Chroma open check (and the chromadb import), for a process that
    forks afterwards; the hash and SQLite checks still run.
    """
    if not is_empty(destination):
        found = sorted(e.name for e in destination.iterdir() if e.name not in IGNORED_ENTRIES)
        raise DirectoryNotEmpty(
            f"{destination} is not empty (holds {found[:5]}); restore needs an empty directory"
        )
    pointer: Pointer | None = None
    if version is None:
        pointer = store.latest(collection)
        version = pointer.version
    else:
        parse_version(version)
    manifest = store.read_manifest(collection, version)
    where = store.url(archive_key(collection, version))
    if manifest.collection != collection or manifest.version != version:
        raise CorruptSnapshot(
            f"the manifest of {where} describes {manifest.collection!r} version "
            f"{manifest.version}, not {collection!r} version {version}"
        )
    if pointer is not None and pointer.sha256 != manifest.sha256:
        raise CorruptSnapshot(
            f"the pointer names sha256 {pointer.sha256} for {version} but its manifest says "
            f"{manifest.sha256}; refusing {where}"
        )
    destination.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(
        tempfile.mkdtemp(prefix=f".{destination.name}.restoring-", dir=destination.parent)
    )
    try:
        archive = staging / ARCHIVE_NAME
        sha256, size = store.download_archive(collection, version, archive)
        if size != manifest.size:
            raise CorruptSnapshot(
                f"{where} is truncated or padded: {size} bytes arrived, the manifest says "
                f"{manifest.size}; refusing it"
            )
        if sha256 != manifest.sha256:
            raise CorruptSnapshot(
                f"{where} is corrupt: its sha256 is {sha256}, the manifest says "
                f"{manifest.sha256}; refusing it"
            )
        root = staging / "chroma"
        root.mkdir()
        unpack(archive, root, where)
        archive.unlink()
        facts = inspect_directory(root, collection, where)
        if facts.count != manifest.count:
            raise CorruptSnapshot(
                f"{where} holds {facts.count} embeddings of {collection!r}; "
                f"the manifest says {manifest.count}"
            )
        if open_with_chroma:
            open_check(root, collection, manifest.count, where)
        _move_into(root, destination)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    log.info(
        "restored snapshot %s of %s (%d embeddings) into %s",
        version,
        collection,
        manifest.count,
        destination,
    )
    return RestoreResult(collection, version, destination, manifest.count, size, sha256)


def _move_into(root: Path, destination: Path) -> None:
    """Move the checked copy into place; ``chroma.sqlite3`` last (it marks a whole directory).

    The staging folder is a sibling of ``destination``, so every move is a rename.
    """
    destination.mkdir(parents=True, exist_ok=True)
    entries = sorted(root.iterdir(), key=lambda e: (e.name == CHROMA_DB_FILE, e.name))
    for entry in entries:
        os.replace(entry, destination / entry.name)


def restore_if_empty(
    settings: WorkerSettings, collection: str, open_with_chroma: bool = False
) -> RestoreResult | None:
    """Restore the promoted snapshot into the collection's directory if that is empty.

    For a worker about to start: returns None (and logs why) when the target is
    a Chroma server, the directory already holds data, or nothing was ever
    promoted; any other failure (unreachable S3, a corrupt snapshot) raises, so
    the worker does not start consuming on an empty collection. Holds the
    directory's writer lock meanwhile. ``open_with_chroma`` defaults to False
    because the worker's main process calls it before forking its pool.
    """
    if settings.chroma_url:
        log.info("restore on start skipped for %s: Chroma is a server", collection)
        return None
    target = EmbeddedChromaTarget(settings.chroma_dir)
    directory = target.directory(collection)
    if not is_empty(directory):
        log.info("restore on start skipped for %s: %s already holds data", collection, directory)
        return None
    store = SnapshotStore.from_settings(settings)
    try:
        with target.writing(collection):
            if not is_empty(directory):  # another local process restored meanwhile
                return None
            return restore_snapshot(store, collection, directory, open_with_chroma=open_with_chroma)
    except NoSnapshot as exc:
        log.info("restore on start: %s; %s starts empty", exc, collection)
        return None
    finally:
        store.close()  # the worker forks next: leave no open connections behind
