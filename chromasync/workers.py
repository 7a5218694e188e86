"""Starting and stopping ``celery`` worker processes, one per collection, concurrency 1.

This is exactly what an operator runs by hand::

    celery -A tasks worker -Q lines -c 1 -n lines@%h
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path


def worker_command(queue: str, name: str, loglevel: str = "INFO") -> list[str]:
    return [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "tasks",
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


@dataclass
class WorkerProcess:
    collection: str
    process: subprocess.Popen[bytes]
    log_path: Path | None

    @classmethod
    def start(
        cls,
        collection: str,
        queue: str,
        env: Mapping[str, str],
        log_path: Path | None = None,
        cwd: Path | None = None,
    ) -> WorkerProcess:
        out = open(log_path, "ab") if log_path else None  # noqa: SIM115
        process = subprocess.Popen(
            worker_command(queue, collection),
            env=dict(env),
            stdout=out or subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
            cwd=str(cwd) if cwd else None,
            # Own process group, so kill() reaches the pool child and nothing else.
            start_new_session=True,
        )
        if out:
            out.close()
        return cls(collection, process, log_path)

    def alive(self) -> bool:
        return self.process.poll() is None

    def check_alive(self) -> None:
        """Raise, with the end of its log, when the worker has exited."""
        if not self.alive():
            raise RuntimeError(
                f"worker for {self.collection} exited with {self.process.returncode}; "
                f"last lines of {self.log_path}:\n{self.log_tail()}"
            )

    def ready(self) -> bool:
        """True once Celery logged that the worker consumes; raises if it exited instead."""
        self.check_alive()
        return " ready." in self.log_tail(200)

    def stop(self, timeout: float = 20.0) -> int:
        """Warm shutdown (SIGTERM: finish the current task), then SIGKILL."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return int(self.process.returncode or 0)

    def kill(self) -> None:
        """SIGKILL the whole worker (main process and its pool child)."""
        if self.process.poll() is None:
            try:
                os.killpg(os.getpgid(self.process.pid), signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                self.process.kill()
            self.process.wait()

    def log_tail(self, lines: int = 40) -> str:
        if not self.log_path or not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
