"""A consistent copy of an embedded Chroma directory, and the checks that a copy is whole.

What a ``PersistentClient`` directory holds (chromadb 1.5):

* ``chroma.sqlite3``: collections, metadata and documents, and the write log
  (``embeddings_queue``). chromadb 1.5 keeps it in rollback-journal mode; a
  WAL-mode file would be copied correctly too, see below.
* one folder per vector segment (named by the segment's id) with the HNSW
  index. Chroma persists it every ``sync_threshold`` (1,000) writes; what came
  after is replayed from the write log when the directory is opened. So an
  index that lags the database is normal and consistent, as long as the
  database copy is not *older* than the index copy.

How the copy stays consistent:

* The caller holds the collection's lease *and* the directory's writer file
  lock, so no write is in flight and none can start.
* ``chroma.sqlite3`` is copied with SQLite's online backup API on a read-only
  connection: it takes SQLite's own shared lock, reads through a WAL if there
  is one, and refuses (rather than repairs) a database a crashed writer left
  with a hot journal.
* Only the vector segments the copied database names are copied; the writer's
  lock file and anything else in the folder stay behind.
* :func:`inspect_directory` then checks the copy with SQLite alone (no chromadb,
  so it is safe in a process that forks afterwards); :func:`open_check` opens
  it with Chroma and reads through the index.
"""

from __future__ import annotations

import shutil
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from tasks.chroma.persistent import CHROMA_DB_FILE, open_directory
from tasks.snapshots.errors import CorruptSnapshot, SnapshotError

#: ``segments.scope`` of the segments whose folders hold an HNSW index.
VECTOR_SCOPE = "VECTOR"
#: ``segments.scope`` of the segment that holds metadata (its rows are the embeddings).
METADATA_SCOPE = "METADATA"


@dataclass(frozen=True)
class DirectoryFacts:
    """What a Chroma directory holds for one collection."""

    collection: str
    #: Embeddings in the collection (what ``collection.count()`` answers).
    count: int
    #: Ids of the vector segments, each a folder next to ``chroma.sqlite3``.
    vector_segments: tuple[str, ...]


def _read_only(path: Path) -> sqlite3.Connection:
    # A URI so that mode=ro applies; as_uri() percent-encodes odd characters in the path.
    return sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)


def _backup(source: Path, destination: Path) -> None:
    if not source.is_file():
        raise SnapshotError(
            f"{source.parent} holds no {CHROMA_DB_FILE}: nothing was ever written to this "
            "collection on this machine (or CHROMASYNC_CHROMA_DIR points elsewhere)"
        )
    try:
        reader = _read_only(source)
        try:
            writer = sqlite3.connect(destination)
            try:
                reader.backup(writer)
            finally:
                writer.close()
        finally:
            reader.close()
    except sqlite3.Error as exc:
        raise SnapshotError(f"cannot copy {source} with SQLite's backup API: {exc}") from exc


def copy_chroma_directory(source: Path, destination: Path, collection: str) -> DirectoryFacts:
    """Copy the Chroma directory ``source`` to the new folder ``destination``.

    Call it only while holding the collection's lease and the directory's
    writer lock (see the module docstring); returns what the copy holds.
    """
    destination.mkdir(parents=True)
    _backup(source / CHROMA_DB_FILE, destination / CHROMA_DB_FILE)
    facts = inspect_directory(destination, collection, f"copy of {source}")
    for segment in facts.vector_segments:
        folder = source / segment
        # A collection too new for its first index flush has no folder yet: Chroma
        # rebuilds the index from the write log when the copy is opened.
        if folder.is_dir():
            shutil.copytree(folder, destination / segment)
    return facts


def inspect_directory(root: Path, collection: str, what: str) -> DirectoryFacts:
    """Check ``root`` with SQLite alone: intact database, the collection, its count.

    Raises :class:`CorruptSnapshot` naming ``what`` when anything is off.
    """
    database = root / CHROMA_DB_FILE
    if not database.is_file():
        raise CorruptSnapshot(f"{what} holds no {CHROMA_DB_FILE}; it is not a Chroma directory")
    try:
        connection = _read_only(database)
        try:
            check = connection.execute("PRAGMA quick_check").fetchall()
            if check != [("ok",)]:
                problems = "; ".join(str(row[0]) for row in check[:3])
                raise CorruptSnapshot(f"{what}: {CHROMA_DB_FILE} fails SQLite's check: {problems}")
            row = connection.execute(
                "SELECT id FROM collections WHERE name = ?", (collection,)
            ).fetchone()
            if row is None:
                names = sorted(r[0] for r in connection.execute("SELECT name FROM collections"))
                raise CorruptSnapshot(
                    f"{what} holds no collection {collection!r} (it holds {names})"
                )
            count = connection.execute(
                "SELECT count(*) FROM embeddings e JOIN segments s ON e.segment_id = s.id "
                "WHERE s.collection = ? AND s.scope = ?",
                (row[0], METADATA_SCOPE),
            ).fetchone()[0]
            segments = tuple(
                r[0]
                for r in connection.execute(
                    "SELECT id FROM segments WHERE collection = ? AND scope = ? ORDER BY id",
                    (row[0], VECTOR_SCOPE),
                )
            )
        finally:
            connection.close()
    except sqlite3.Error as exc:
        raise CorruptSnapshot(f"{what}: {CHROMA_DB_FILE} cannot be read: {exc}") from exc
    for segment in segments:
        if "/" in segment or segment in ("", ".", ".."):
            raise CorruptSnapshot(f"{what} names a vector segment {segment!r} that is not a folder")
    return DirectoryFacts(collection=collection, count=int(count), vector_segments=segments)


def open_check(root: Path, collection: str, expected: int, what: str) -> None:
    """Open ``root`` with Chroma: the collection counts ``expected`` and answers a query.

    Imports chromadb (and starts its threads): not for a process that forks later.
    """
    try:
        client = open_directory(root)
    except Exception as exc:
        raise CorruptSnapshot(f"{what}: Chroma cannot open it: {exc}") from exc
    try:
        col = client.get_collection(name=collection, embedding_function=None)
        count = col.count()
        if count != expected:
            raise CorruptSnapshot(
                f"{what}: Chroma counts {count} embeddings in {collection!r}, expected {expected}"
            )
        if count:
            first = col.get(limit=1, include=["embeddings"])
            found = col.query(query_embeddings=[first["embeddings"][0]], n_results=1)
            if not found["ids"] or not found["ids"][0]:
                raise CorruptSnapshot(f"{what}: the vector index of {collection!r} answers nothing")
    except CorruptSnapshot:
        raise
    except Exception as exc:
        raise CorruptSnapshot(f"{what}: Chroma cannot read {collection!r}: {exc}") from exc
    finally:
        client.close()
