"""The stores a store contract (locks, checkpoints) runs its cases on."""

from __future__ import annotations

from typing import Any

import pytest

#: The store every contract runs on in both lanes: the backend of ``memory://NAME`` URLs.
MEMORY = "memory"


def store_params(*real: str) -> list[Any]:
    """``real`` stores (marked ``real_store``: ``make test`` only) and the memory one."""
    return [*(pytest.param(name, marks=pytest.mark.real_store) for name in real), MEMORY]
