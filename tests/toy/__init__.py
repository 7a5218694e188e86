"""Toy additions (an entity, a sink) run from a copy of the source tree with one entry more."""

from __future__ import annotations

import shutil
from pathlib import Path

#: The repository the copies are made from.
ROOT = Path(__file__).resolve().parents[2]


def tree_with_entry(tmp_path: Path, module: str, start: str, entry: str) -> Path:
    """A copy of the source tree whose ``module`` (a path below it) has ``entry`` inserted
    right after the line ``start`` (which must occur once); nothing else differs."""
    tree = tmp_path / "src"
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for package in ("producers", "tasks", "chromasync", "tests"):
        shutil.copytree(ROOT / package, tree / package, ignore=ignore)
    shutil.copy(ROOT / "celeryconfig.py", tree / "celeryconfig.py")
    target = tree / module
    source = target.read_text()
    assert source.count(start) == 1, f"{module} no longer holds {start!r} once"
    target.write_text(source.replace(start, start + entry))
    return tree
