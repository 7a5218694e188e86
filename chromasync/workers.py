"""Starting and stopping ``celery`` worker processes, one per collection, concurrency 1.

This is exactly what an operator runs by hand::

    celery -A tasks worker -Q lines -c 1 -n lines@%h
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from chromasync.processes import ask_to_stop, kill, spawn, stop_process

#: The Celery app of chromasync's workers (``celery -A tasks``).
TASKS_APP = "tasks"


def worker_command(
    queue: str, name: str, loglevel: str = "INFO", app: str = TASKS_APP
) -> list[str]:
    return [
        sys.executable,
        "-m",
        "celery",
        "-A",
        app,
        "worker",
        "-Q",
        queue,
        "-c",
        "1",
        "-n",
        f"{name}@%h",
        "--loglevel",
        loglevel,
        # SQS carries no broadcast: gossip and mingle cannot work. Worker heartbeats
        # are events, which go to Redis (tasks.events), so Flower sees workers online.
        "--without-gossip",
        "--without-mingle",
    ]


#: Prefix of a worker's command when it must not outlive the process that started it
#: (``chromasync run``). It asks Linux to send it SIGTERM, Celery's warm shutdown, when
#: its parent dies, even by SIGKILL (``PR_SET_PDEATHSIG``, which an exec keeps), gives up
#: if the parent is already gone, then becomes the worker. Run in the child itself, not
#: as a ``preexec_fn``, which is unsafe in a process with threads (the poller's).
#: The signal comes when the *thread* that started the child ends: start workers from
#: the thread that outlives them (``run``'s main thread).
DIE_WITH_PARENT = (
    "import ctypes, os, signal, sys\n"
    "ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # 1: PR_SET_PDEATHSIG\n"
    "if os.getppid() != int(sys.argv[1]):\n"
    "    sys.exit('chromasync: the process that started this worker is gone')\n"
    "os.execv(sys.argv[2], sys.argv[2:])\n"
)


def die_with_parent(command: list[str]) -> list[str]:
    """``command``, run so that it gets SIGTERM when this process dies (Linux only)."""
    if not sys.platform.startswith("linux"):
        return command
    return [sys.executable, "-c", DIE_WITH_PARENT, str(os.getpid()), *command]


@dataclass
class WorkerProcess:
    collection: str
    process: subprocess.Popen[bytes]
    log_path: Path | None
    #: Size of the log when this process started: a log appended to by earlier runs (a
    #: restart) holds their " ready." lines too, so readiness is read after this offset.
    log_offset: int = 0

    @classmethod
    def start(
        cls,
        collection: str,
        queue: str,
        env: Mapping[str, str],
        log_path: Path | None = None,
        cwd: Path | None = None,
        *,
        app: str = TASKS_APP,
        with_parent: bool = False,
    ) -> WorkerProcess:
        """Start a worker of ``app``; ``with_parent``: it gets SIGTERM if this process dies."""
        command = worker_command(queue, collection, app=app)
        if with_parent:
            command = die_with_parent(command)
        offset = log_path.stat().st_size if log_path and log_path.exists() else 0
        # A session of its own, so kill() reaches the pool child and nothing else, and a
        # Ctrl-C meant for `chromasync run` reaches the worker only as the warm shutdown
        # run sends it.
        process = spawn(command, log=log_path, env=env, cwd=cwd, new_session=True)
        return cls(collection, process, log_path, offset)

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None

    def check_alive(self) -> None:
        """Raise, with the end of its log, when the worker has exited."""
        if not self.alive():
            raise RuntimeError(self.exit_report())

    def exit_report(self) -> str:
        """How the worker ended and the last lines of its log."""
        return (
            f"worker for {self.collection} exited with {self.process.returncode}; "
            f"last lines of {self.log_path}:\n{self.log_tail()}"
        )

    def ready(self) -> bool:
        """True once Celery logged that this process consumes; raises if it exited instead."""
        self.check_alive()
        return " ready." in self.log_since_start()

    def request_stop(self) -> None:
        """Ask for a warm shutdown (SIGTERM: finish the current task), without waiting."""
        ask_to_stop(self.process)

    def stop(self, timeout: float = 20.0) -> int:
        """Warm shutdown (SIGTERM: finish the current task), then SIGKILL the whole group."""
        return int(stop_process(self.process, timeout, group=True) or 0)

    def kill(self) -> None:
        """SIGKILL the whole worker (main process and its pool child)."""
        kill(self.process, group=True)

    def log_since_start(self) -> str:
        """What this process wrote to its log (not earlier runs appending to the same file)."""
        if not self.log_path or not self.log_path.exists():
            return ""
        with self.log_path.open("rb") as log:
            log.seek(self.log_offset)
            return log.read().decode(errors="replace")

    def log_tail(self, lines: int = 40) -> str:
        if not self.log_path or not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
