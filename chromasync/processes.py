"""Child processes: started with their output appended to a log, stopped asked first, then killed.

Every child the operator tools start (moto, the Chroma and Redis servers, celery
workers, the benchmark's poller) is stopped the same way by :func:`stop_process`:
SIGTERM (a celery worker's warm shutdown: it finishes the task in hand; a server
closes), ``timeout`` seconds to exit, then SIGKILL. A child started in a session
of its own is killed with its whole process group, so a celery worker's pool
child goes with it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import IO, Any, Protocol


def spawn(
    command: Sequence[str],
    *,
    log: Path | None = None,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    new_session: bool = False,
) -> subprocess.Popen[bytes]:
    """Start ``command``, stdout and stderr appended to ``log`` (discarded without one).

    ``env`` None: this process's environment. ``new_session``: the child leads a
    process group of its own (see :func:`stop_process`) and a Ctrl-C meant for
    this process does not reach it.
    """
    out: IO[Any] | int = open(log, "ab") if log else subprocess.DEVNULL  # noqa: SIM115
    try:
        return subprocess.Popen(
            list(command),
            env=dict(env) if env is not None else None,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=str(cwd) if cwd else None,
            start_new_session=new_session,
        )
    finally:
        if not isinstance(out, int):
            out.close()  # the child holds its own copy


def ask_to_stop(process: subprocess.Popen[bytes]) -> None:
    """Send SIGTERM unless it has exited; do not wait."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)


def kill(process: subprocess.Popen[bytes], *, group: bool = False) -> None:
    """SIGKILL it (its whole process group with ``group``) unless it has exited, and reap it."""
    if process.poll() is not None:
        return
    if group:
        # Not reaped yet, so its pid (the group's id) cannot have been reused.
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            process.kill()
    else:
        process.kill()
    process.wait()


def stop_process(process: subprocess.Popen[bytes], timeout: float, *, group: bool = False) -> int:
    """SIGTERM, up to ``timeout`` seconds to exit, then :func:`kill`; returns the exit status.

    ``group``: the child was started with ``new_session`` and its children go too.
    """
    ask_to_stop(process)
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        kill(process, group=group)
    return process.returncode


class Stoppable(Protocol):
    """Something stopped in two steps: asked (without waiting), then waited for."""

    def request_stop(self) -> None: ...

    def stop(self, timeout: float) -> object: ...


def stop_all(items: Iterable[Stoppable], timeout: float) -> None:
    """Ask every item to stop at once, then wait for each; ``timeout`` seconds for them all."""
    items = list(items)
    for item in items:
        item.request_stop()
    deadline = time.monotonic() + timeout
    for item in items:
        item.stop(max(0.0, deadline - time.monotonic()))
