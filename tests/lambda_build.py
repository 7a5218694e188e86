"""The Lambda build script (deploy/lambda/build.py) for the tests, and the producer's own install.

``deploy/lambda`` is no package (``lambda`` is a keyword), so the script is loaded
from its path. :func:`producer_site` is the lock's packages installed for the
Lambda's platform, before any pruning: the third-party half of a plain
``pip install chromasync`` (no extra), pinned. It is installed once per lock
under ``.chromasync/lambda/`` (PyPI the first time) and shared by the tests.
"""

from __future__ import annotations

import functools
import importlib.util
import subprocess
import sys
import sysconfig
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "deploy" / "lambda" / "build.py"

#: The standard library's directories: the only place a ``-I -S`` child may import from
#: besides the directories a test puts on its path.
STDLIB = tuple(sorted({sysconfig.get_paths()["stdlib"], sysconfig.get_paths()["platstdlib"]}))


@functools.cache
def build_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("chromasync_lambda_build", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


@functools.cache
def producer_site() -> Path:
    site: Path = build_module().install()
    return site


def isolated(
    code: str, path: list[Path], env: dict[str, str], cwd: Path
) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in ``python -I -S``: no site-packages, no PYTHON* variables, only ``path``.

    After ``code`` the child checks that every module it imported came from
    ``path`` or the standard library, then exits with ``exit_code`` if ``code``
    set one (``code`` must not exit by itself, or the check is skipped).
    """
    allowed = (*[str(p) for p in path], *STDLIB)
    prologue = f"import sys\nsys.path[:0] = {[str(p) for p in path]!r}\n"
    epilogue = (
        "\nstray = sorted(\n"
        "    f for m in list(sys.modules.values())\n"
        f"    if (f := getattr(m, '__file__', None)) and not f.startswith({allowed!r})\n"
        ")\n"
        "assert not stray, f'imported from outside the isolated path: {stray[:5]}'\n"
        "sys.exit(globals().get('exit_code', 0))\n"
    )
    return subprocess.run(
        [sys.executable, "-I", "-S", "-c", prologue + code + epilogue],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )
