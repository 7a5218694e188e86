"""The interface of a Chroma target (the factory is :mod:`tasks.chroma.factory`).

Collections are always opened with ``embedding_function=None``: chromasync
passes embeddings explicitly and must never make Chroma download a model.
"""

from __future__ import annotations

import abc
from collections.abc import Iterator
from contextlib import AbstractContextManager
from typing import Any


class ChromaUnavailable(RuntimeError):
    """Chroma cannot be reached or opened right now (transient)."""


class ChromaTarget(abc.ABC):
    """Gives the worker its collections and serialises writes to them."""

    #: Chroma's own limit of ids per call (``client.get_max_batch_size()``).
    max_batch_size: int = 5461

    @abc.abstractmethod
    def collection(self, name: str) -> Any:
        """The named collection, created empty if it does not exist yet."""

    @abc.abstractmethod
    def writing(self, name: str) -> AbstractContextManager[None]:
        """Hold whatever makes this process the only writer of ``name``."""

    def describe(self) -> str:
        return type(self).__name__

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release clients and file handles."""


def chunks(items: list[Any], size: int) -> Iterator[list[Any]]:
    """``items`` in consecutive lists of at most ``size`` (one Chroma call each)."""
    for start in range(0, len(items), size):
        yield items[start : start + size]
