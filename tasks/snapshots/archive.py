"""Packing a Chroma directory into ``snapshot.tar.gz``, hashing it, and unpacking it safely.

The archive holds the directory's files under relative names (``chroma.sqlite3``,
``<segment id>/data_level0.bin``...), in sorted order with owners cleared, so
its content depends on the files only. Unpacking reuses the delta merger's
checked extraction (:func:`tasks.deltas.extract.extract_tarball`): no links, devices,
absolute paths or ``..``; nothing is written when a member is refused.
"""

from __future__ import annotations

import gzip
import hashlib
import tarfile
from pathlib import Path

from tasks.deltas.errors import InvalidDelta
from tasks.deltas.extract import extract_tarball
from tasks.snapshots.errors import CorruptSnapshot

#: Bytes read at a time when hashing or streaming an archive.
CHUNK = 1 << 20
#: gzip level 1: the lease is held while packing, and embeddings (floats) barely
#: compress, so a higher level costs time for almost no size (BENCHMARKS.md).
COMPRESS_LEVEL = 1


def file_digest(path: Path) -> tuple[str, int]:
    """(hex sha256, size in bytes) of a file."""
    digest = hashlib.sha256()
    size = 0
    with open(path, "rb") as stream:
        while chunk := stream.read(CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


def _normalised(info: tarfile.TarInfo) -> tarfile.TarInfo:
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


def pack(directory: Path, archive: Path) -> tuple[str, int]:
    """Write ``archive`` (tar.gz of ``directory``'s content); return its (sha256, size)."""
    with (
        open(archive, "wb") as raw,
        gzip.GzipFile(fileobj=raw, mode="wb", mtime=0, compresslevel=COMPRESS_LEVEL) as zipped,
        tarfile.open(fileobj=zipped, mode="w") as tar,
    ):
        for path in sorted(directory.rglob("*")):
            info = _normalised(
                tar.gettarinfo(str(path), arcname=path.relative_to(directory).as_posix())
            )
            if info.isfile():
                with open(path, "rb") as content:
                    tar.addfile(info, content)
            elif info.isdir():
                tar.addfile(info)
            else:
                raise ValueError(f"{path} is neither a file nor a folder; it cannot be packed")
    return file_digest(archive)


def unpack(archive: Path, destination: Path, source: str) -> None:
    """Extract ``archive`` into ``destination``; :class:`CorruptSnapshot` when refused."""
    try:
        extract_tarball(archive, destination, source)
    except InvalidDelta as exc:
        raise CorruptSnapshot(f"snapshot archive refused: {exc}") from exc
