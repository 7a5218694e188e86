"""Running one of our commands as its own process, as a user would, for the tests."""

from __future__ import annotations

import os
import subprocess
import sys


def clean_env() -> dict[str, str]:
    """This environment without any ``CHROMASYNC_`` or ``AWS_`` setting: what a command
    reads comes from its own arguments, not from the test run's settings."""
    return {k: v for k, v in os.environ.items() if not k.startswith(("CHROMASYNC_", "AWS_"))}


def run_module(module: str, *args: str, timeout: float = 170) -> subprocess.CompletedProcess[str]:
    """``python -m module args`` in :func:`clean_env`; the test fails, quoting the end of
    its output, unless it exits 0."""
    done = subprocess.run(
        [sys.executable, "-m", module, *args],
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done
