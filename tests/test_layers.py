"""The import rule that keeps the two sides apart, checked on the source tree.

``chromasync.core`` is what both sides share (entities, the contract, settings,
backoff, log context, AWS resource errors); it imports neither side. The
producer (``producers``, deployed alone as a Lambda zip) and the worker
(``tasks``) import the core and never each other, nor the operator layer (the
rest of ``chromasync``: CLI, demo, supervisor). Every import is checked, those
inside functions and under ``TYPE_CHECKING`` included: a lazy import is still a
dependency, and the Lambda zip holds only ``producers`` and the core.
"""

from __future__ import annotations

import ast
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

#: Our own top-level modules; anything else imported is the standard library or a dependency.
OWN = ("producers", "tasks", "chromasync", "celeryconfig", "benchmarks", "tests")
#: The layers, each with the own modules it may import (by prefix).
ALLOWED: dict[str, tuple[str, ...]] = {
    "chromasync.core": ("chromasync.core",),
    "producers": ("producers", "chromasync.core"),
    "tasks": ("tasks", "chromasync.core"),
    "celeryconfig": ("chromasync.core",),
}
#: Third-party packages a layer may not import: the producer deploys without chromadb.
FORBIDDEN_PACKAGES: dict[str, tuple[str, ...]] = {
    "chromasync.core": ("chromadb",),
    "producers": ("chromadb",),
}


@dataclass(frozen=True)
class Violation:
    path: str
    line: int
    module: str
    imported: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.module} imports {self.imported}"


def _module_name(root: Path, path: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _layer(module: str) -> str | None:
    for layer in sorted(ALLOWED, key=len, reverse=True):
        if module == layer or module.startswith(layer + "."):
            return layer
    return None


def _imports(tree: ast.AST, module: str, is_package: bool) -> list[tuple[int, str]]:
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".")
                base = base[: len(base) - node.level + (1 if is_package else 0)]
                name = ".".join([*base, node.module] if node.module else base)
            else:
                name = node.module or ""
            found.append((node.lineno, name))
            # ``from chromasync import cli`` imports chromasync.cli, not just chromasync.
            found += [(node.lineno, f"{name}.{alias.name}") for alias in node.names]
    return found


def _within(name: str, prefixes: tuple[str, ...]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def violations(root: Path) -> list[Violation]:
    """Every import in ``root``'s layers that its layer does not allow."""
    out: list[Violation] = []
    paths = [root / "celeryconfig.py", *(root / "producers").rglob("*.py")]
    paths += [*(root / "tasks").rglob("*.py"), *(root / "chromasync" / "core").rglob("*.py")]
    for path in sorted(paths):
        module = _module_name(root, path)
        layer = _layer(module)
        assert layer is not None, module
        tree = ast.parse(path.read_text(), str(path))
        for line, name in _imports(tree, module, path.name == "__init__.py"):
            top = name.split(".")[0]
            if top in OWN:
                # ``chromasync`` alone (the package's empty __init__) is no layer of its own.
                if name != "chromasync" and not _within(name, ALLOWED[layer]):
                    out.append(Violation(str(path.relative_to(root)), line, module, name))
            elif _within(name, FORBIDDEN_PACKAGES.get(layer, ())):
                out.append(Violation(str(path.relative_to(root)), line, module, name))
    return out


def test_no_layer_imports_what_it_may_not() -> None:
    found = violations(ROOT)
    assert not found, "forbidden imports:\n" + "\n".join(map(str, found))


@pytest.mark.parametrize(
    ("where", "planted"),
    [
        ("tasks/compaction.py", "from producers.packing import pack"),
        ("tasks/app.py", "import celeryconfig"),
        ("tasks/runtime.py", "    from chromasync.cli import main"),
        ("producers/publishing.py", "from tasks.app import app"),
        ("producers/api.py", "import chromadb"),
        ("producers/pipeline.py", "from chromasync import demo"),
        ("chromasync/core/contract.py", "from producers.errors import InvalidChange"),
        ("chromasync/core/config.py", "from ..logs import log_format\nfrom ...tasks import app"),
        ("celeryconfig.py", "from producers.publishing import producer_app"),
    ],
)
def test_a_planted_forbidden_import_is_found(tmp_path: Path, where: str, planted: str) -> None:
    for part in ("producers", "tasks", "chromasync/core"):
        shutil.copytree(ROOT / part, tmp_path / part, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "celeryconfig.py", tmp_path / "celeryconfig.py")
    assert violations(tmp_path) == []
    target = tmp_path / where
    body = "def _planted() -> None:\n" + "\n".join(
        "    " + line.strip() for line in planted.splitlines()
    )
    target.write_text(target.read_text() + "\n\n" + body + "\n")
    found = violations(tmp_path)
    assert [v.path for v in found] == [where] * len(found) and found, found
