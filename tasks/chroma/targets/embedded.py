"""Embedded Chroma: one PersistentClient directory per collection.

Two processes writing one PersistentClient directory at once can corrupt
its embeddings, so their writes are serialised. Each collection has
its own directory (``{root}/{collection}``), and every batch of writes holds
an exclusive ``flock`` on ``{root}/{collection}/.chromasync-writer.lock``: a
second process cannot write the directory at the same time, even if the
distributed lock were misconfigured.
"""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tasks.chroma.persistent import open_directory
from tasks.chroma.target import ChromaTarget, ChromaUnavailable

#: Name of the writer's lock file inside a collection's directory.
WRITER_LOCK_FILE = ".chromasync-writer.lock"
#: How long a writer waits for another process's file lock before giving up.
FILE_LOCK_TIMEOUT = 30.0


class DirectoryBusy(ChromaUnavailable):
    """Another process holds the directory's writer lock."""


class EmbeddedChromaTarget(ChromaTarget):
    def __init__(self, root: Path | str, file_lock_timeout: float = FILE_LOCK_TIMEOUT) -> None:
        self.root = Path(root)
        self.file_lock_timeout = file_lock_timeout
        self._clients: dict[str, Any] = {}

    def directory(self, name: str) -> Path:
        return self.root / name

    def _client(self, name: str) -> Any:
        client = self._clients.get(name)
        if client is None:
            path = self.directory(name)
            path.mkdir(parents=True, exist_ok=True)
            try:
                client = open_directory(path)
            except Exception as exc:
                raise ChromaUnavailable(f"cannot open Chroma directory {path}: {exc}") from exc
            self.max_batch_size = int(client.get_max_batch_size())
            self._clients[name] = client
        return client

    def collection(self, name: str) -> Any:
        return self._client(name).get_or_create_collection(name=name, embedding_function=None)

    @contextmanager
    def writing(self, name: str) -> Iterator[None]:
        path = self.directory(name)
        path.mkdir(parents=True, exist_ok=True)
        fd = os.open(path / WRITER_LOCK_FILE, os.O_CREAT | os.O_RDWR, 0o644)
        try:
            deadline = time.monotonic() + self.file_lock_timeout
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        raise DirectoryBusy(
                            f"another process is writing Chroma directory {path} "
                            f"(held {WRITER_LOCK_FILE} for over {self.file_lock_timeout}s)"
                        ) from None
                    time.sleep(0.05)
            try:
                yield
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)

    def describe(self) -> str:
        return f"embedded directory {self.root}"

    def close(self) -> None:
        self._clients.clear()
