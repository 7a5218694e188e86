"""Unpacking an archive from another service without letting it write outside its folder.

A delta (and a snapshot, :mod:`tasks.snapshots.archive`) comes from
elsewhere: every tarball member and object key is checked before anything is
written, so a hostile or broken archive cannot write outside its temporary
directory (:class:`~tasks.deltas.errors.UnsafeDelta`), and a refused archive
writes nothing at all.
"""

from __future__ import annotations

import tarfile
import zlib
from pathlib import Path, PurePosixPath

from tasks.chroma.persistent import CHROMA_DB_FILE
from tasks.deltas.errors import InvalidDelta, UnsafeDelta
from tasks.errors import DeltaNotReady


def safe_destination(root: Path, relative: str, what: str) -> Path:
    """Where ``relative`` lands under ``root``; raises :class:`UnsafeDelta` if outside it."""
    path = PurePosixPath(relative)
    if not relative or path.is_absolute() or ".." in path.parts:
        raise UnsafeDelta(
            f"{what}: refusing path {relative!r} (empty, absolute or containing '..'); "
            "a delta may only hold paths inside its own directory"
        )
    destination = (root / path).resolve()
    if not destination.is_relative_to(root.resolve()):
        raise UnsafeDelta(f"{what}: path {relative!r} resolves outside the delta directory")
    return destination


def _check_member(member: tarfile.TarInfo, root: Path, source: str) -> None:
    what = f"{source} member {member.name!r}"
    if member.issym() or member.islnk():
        kind = "a symbolic link" if member.issym() else "a hard link"
        raise UnsafeDelta(
            f"{what} is {kind} (to {member.linkname!r}); a delta may hold only files and folders"
        )
    if not (member.isfile() or member.isdir()):
        raise UnsafeDelta(
            f"{what} is a device, fifo or other special file; "
            "a delta may hold only files and folders"
        )
    safe_destination(root, member.name, what)


def extract_tarball(tarball: Path, root: Path, source: str) -> None:
    """Extract ``tarball`` into ``root`` after checking every member (nothing on refusal)."""
    try:
        with tarfile.open(tarball, "r:gz") as archive:
            members = archive.getmembers()
            for member in members:
                _check_member(member, root, source)
            # The "data" filter repeats the checks and drops modes like setuid.
            archive.extractall(root, members=members, filter="data")
    except (tarfile.TarError, EOFError, zlib.error) as exc:
        raise InvalidDelta(f"{source} is not a readable .tar.gz archive: {exc}") from exc


def chroma_root(directory: Path, source: str, uploading: bool) -> Path:
    """The Chroma directory inside a downloaded delta (the one holding ``chroma.sqlite3``).

    ``uploading`` (directory form): a missing database may just not be uploaded
    yet, so that is :class:`DeltaNotReady`; in a tarball it is a broken delta.
    """
    if (directory / CHROMA_DB_FILE).is_file():
        return directory
    found = sorted(p.parent for p in directory.rglob(CHROMA_DB_FILE) if p.is_file())
    if len(found) == 1:
        return found[0]
    if not found:
        message = f"{source} holds no {CHROMA_DB_FILE}"
        if uploading:
            raise DeltaNotReady(f"{message} (yet: is the upload still running?)")
        raise InvalidDelta(f"{message}; a delta must be a Chroma PersistentClient directory")
    folders = [str(p.relative_to(directory)) for p in found]
    raise InvalidDelta(f"{source} holds several Chroma directories: {folders}")
