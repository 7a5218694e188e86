"""Toy additions (an entity, a sink) run from a copy of the source tree with one entry more."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

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


def run_in_tree(tree: Path, script: str, env: dict[str, str], log_dir: Path) -> dict[str, Any]:
    """Run ``tests/toy/SCRIPT`` of the copy (its code first on the path); the JSON it prints
    last. Fails with the end of its stderr when it exits non-zero."""
    done = subprocess.run(
        [sys.executable, str(tree / "tests" / "toy" / script), str(log_dir)],
        cwd=tree,
        env={**env, "PYTHONPATH": str(tree)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    seen: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return seen
