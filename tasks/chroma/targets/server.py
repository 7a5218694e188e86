"""Chroma as a server (``chroma run``), reached with HttpClient.

The server serialises writes itself; one writer per collection is still
guaranteed by the distributed lock, so :meth:`writing` holds nothing more.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlparse

from tasks.chroma.target import ChromaTarget, ChromaUnavailable


class ServerChromaTarget(ChromaTarget):
    def __init__(self, url: str) -> None:
        parsed = urlparse(url)
        self.url = url
        self.host = parsed.hostname or "127.0.0.1"
        self.port = parsed.port or (443 if parsed.scheme == "https" else 8000)
        self.ssl = parsed.scheme == "https"
        self._client: Any = None

    def client(self) -> Any:
        if self._client is None:
            import chromadb
            from chromadb.config import Settings as ChromaSettings

            try:
                client = chromadb.HttpClient(
                    host=self.host,
                    port=self.port,
                    ssl=self.ssl,
                    settings=ChromaSettings(anonymized_telemetry=False),
                )
                self.max_batch_size = int(client.get_max_batch_size())
            except Exception as exc:
                raise ChromaUnavailable(
                    f"Chroma server at {self.url} is unreachable ({exc}); "
                    "check CHROMASYNC_CHROMA_URL and that `chroma run` is up"
                ) from exc
            self._client = client
        return self._client

    def collection(self, name: str) -> Any:
        return self.client().get_or_create_collection(name=name, embedding_function=None)

    @contextmanager
    def writing(self, name: str) -> Iterator[None]:
        yield

    def describe(self) -> str:
        return f"server {self.url}"

    def close(self) -> None:
        self._client = None
