"""The Dockerfile and the lock files stay true to the repository (no docker engine needed).

Checked statically: every path the Dockerfile copies exists, every top-level module
the ``chromasync`` command imports (transitively) is copied and packaged, it runs as
a user other than root, and pip installs the third-party packages from the lock
only. The locks: ``==`` pins with hashes, in step with pyproject.toml, the Lambda's
a subset of the image's at the same versions. And the image's lock resolves: pip
``--dry-run`` on this Linux x86_64 CPython 3.11 (the image's platform), wheels only.
"""

from __future__ import annotations

import ast
import json
import platform
import re
import shlex
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parent.parent
LOCKS = ROOT / "deploy" / "requirements"
IMAGE_LOCK = "deploy/requirements/image.txt"

#: The extras the image carries: every command runs in it.
IMAGE_EXTRAS = ("worker", "demo", "bench")
#: What the Lambda must not pull in.
NOT_FOR_THE_LAMBDA = {
    "chromadb",
    "pycurl",
    "redis",
    "flower",
    "prometheus-client",
    "moto",
    "flask",
    "flask-cors",
    "matplotlib",
}


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of the Dockerfile, continuation lines joined."""
    found: list[tuple[str, str]] = []
    pending = ""
    for raw in (ROOT / "Dockerfile").read_text().splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line = pending + line
        pending = ""
        keyword, _, rest = line.partition(" ")
        found.append((keyword.upper(), rest.strip()))
    return found


def copies() -> list[tuple[list[str], str]]:
    """(sources, destination) of each COPY from the build context."""
    result = []
    for keyword, rest in instructions():
        if keyword != "COPY":
            continue
        parts = json.loads(rest) if rest.startswith("[") else shlex.split(rest)
        parts = [p for p in parts if not p.startswith("--")]
        result.append((parts[:-1], parts[-1]))
    return result


def runs() -> list[str]:
    return [rest for keyword, rest in instructions() if keyword == "RUN"]


def local_modules() -> set[str]:
    """Top-level modules of the repository: packages and single-file modules."""
    packages = {p.parent.name for p in ROOT.glob("*/__init__.py")}
    return packages | {p.stem for p in ROOT.glob("*.py")}


def module_files(name: str) -> Iterator[Path]:
    if (ROOT / f"{name}.py").exists():
        yield ROOT / f"{name}.py"
    else:
        yield from sorted((ROOT / name).rglob("*.py"))


def imported_tops(path: Path) -> set[str]:
    tops = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            tops |= {alias.name.partition(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            tops.add(node.module.partition(".")[0])
    return tops


def modules_the_cli_needs() -> set[str]:
    """Local top-level modules reachable by imports from the ``chromasync`` package."""
    local = local_modules()
    needed, todo = set(), ["chromasync"]
    while todo:
        name = todo.pop()
        if name in needed:
            continue
        needed.add(name)
        for path in module_files(name):
            todo.extend(sorted((imported_tops(path) & local) - needed))
    # celery -A tasks and the broker settings are loaded by name, not imported.
    return needed | {"tasks", "celeryconfig"}


def test_every_path_the_dockerfile_copies_exists() -> None:
    assert copies()
    for sources, _ in copies():
        for source in sources:
            assert (ROOT / source).exists(), f"COPY {source}: no such path"


def test_every_module_the_cli_imports_is_copied_and_packaged() -> None:
    needed = modules_the_cli_needs()
    assert {"producers", "tasks", "chromasync", "benchmarks", "celeryconfig"} <= needed
    assert "tests" not in needed
    copied = {Path(s).name for sources, _ in copies() for s in sources}
    for name in needed:
        assert name in copied or f"{name}.py" in copied, f"the Dockerfile does not copy {name}"
    setuptools = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    packaged = set(setuptools["py-modules"]) | {
        p.rstrip("*") for p in setuptools["packages"]["find"]["include"]
    }
    assert needed <= packaged, f"not installed by pip install .: {needed - packaged}"


def test_it_runs_as_a_user_other_than_root() -> None:
    keywords = [keyword for keyword, _ in instructions()]
    assert keywords[-1] == "CMD"
    users = [rest for keyword, rest in instructions() if keyword == "USER"]
    assert users, "no USER: the container would run as root"
    assert users[-1].split(":")[0] not in {"root", "0"}
    assert keywords.index("USER") < keywords.index("CMD")


def test_pip_installs_from_the_lock_only() -> None:
    installs = [run for run in runs() if "pip install" in run]
    from_lock = [run for run in installs if f"-r {IMAGE_LOCK}" in run]
    assert len(from_lock) == 1, installs
    assert "--require-hashes" in from_lock[0] and "--no-deps" in from_lock[0]
    assert any(IMAGE_LOCK in sources for sources, _ in copies())
    for run in installs:
        # Anything else (the project itself) adds no dependency and fetches no build backend.
        if run not in from_lock:
            assert "--no-deps" in run and "--no-build-isolation" in run, run


def pins(lock: str) -> dict[str, Version]:
    """Name → version of a lock file; each entry must be ``==`` with hashes."""
    text = (LOCKS / lock).read_text()
    found: dict[str, Version] = {}
    for entry in re.split(r"\n(?=\S)", text):
        first = entry.split("\\")[0].strip()
        if not first or first.startswith("#"):
            continue
        requirement = Requirement(first)
        (spec,) = requirement.specifier
        assert spec.operator == "==", first
        assert "--hash=sha256:" in entry, f"{first} has no hash"
        found[canonicalize_name(requirement.name)] = Version(spec.version)
    return found


def pyproject_requirements(*extras: str) -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    lines = list(project["dependencies"])
    for extra in extras:
        lines += project["optional-dependencies"][extra]
    return [r for r in map(Requirement, lines) if r.name != project["name"]]


@pytest.mark.parametrize(("lock", "extras"), [("image.txt", IMAGE_EXTRAS), ("lambda.txt", ())])
def test_the_locks_pin_what_pyproject_asks_for(lock: str, extras: tuple[str, ...]) -> None:
    pinned = pins(lock)
    for requirement in pyproject_requirements(*extras):
        name = canonicalize_name(requirement.name)
        assert name in pinned, f"{lock} does not pin {name}"
        assert requirement.specifier.contains(pinned[name], prereleases=True), (
            f"{lock}: {name}=={pinned[name]} does not satisfy {requirement}"
        )


def test_the_lambda_lock_is_the_producer_at_the_image_versions() -> None:
    image, lambda_ = pins("image.txt"), pins("lambda.txt")
    assert not set(lambda_) & NOT_FOR_THE_LAMBDA
    assert {name: image.get(name) for name in lambda_} == lambda_


def test_the_image_lock_holds_its_build_backend() -> None:
    build = tomllib.loads((ROOT / "pyproject.toml").read_text())["build-system"]["requires"]
    pinned = pins("image.txt")
    for requirement in map(Requirement, build):
        assert requirement.specifier.contains(pinned[canonicalize_name(requirement.name)])


#: The platform both locks are for, and the image's.
LOCK_PLATFORM = sys.platform == "linux" and platform.machine() == "x86_64"


@pytest.mark.slow
@pytest.mark.skipif(
    not LOCK_PLATFORM or sys.version_info[:2] != (3, 11),
    reason="the lock is for CPython 3.11 on Linux x86_64",
)
def test_the_image_lock_resolves_without_conflict(tmp_path: Path) -> None:
    """pip resolves the whole lock, dependencies included, from wheels; nothing is installed."""
    report = tmp_path / "report.json"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--dry-run",
            "--ignore-installed",
            "--quiet",
            "--disable-pip-version-check",
            "--only-binary=:all:",
            "--report",
            str(report),
            "-r",
            str(ROOT / IMAGE_LOCK),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    resolved = {
        canonicalize_name(item["metadata"]["name"]): Version(item["metadata"]["version"])
        for item in json.loads(report.read_text())["install"]
    }
    assert resolved == pins("image.txt")
