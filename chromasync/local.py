"""Local stand-ins for the cloud: moto in server mode, and a Redis probe.

``chromasync run --demo`` and the tests use these so that nothing beyond what
pip installs is needed: moto serves SQS, DynamoDB + Streams and S3 over HTTP
on 127.0.0.1 (kombu's SQS transport talks pycurl, which moto's in-process
decorator cannot intercept, so it must be a real server).
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, TypeVar

T = TypeVar("T")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(
    condition: Callable[[], T], timeout: float, interval: float = 0.05, what: str = "condition"
) -> T:
    """Poll ``condition`` until it returns something truthy or ``timeout`` passes."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while True:
        try:
            value = condition()
            if value:
                return value
        except Exception as exc:  # noqa: BLE001 - keep polling, report the last error
            last_error = exc
        if time.monotonic() >= deadline:
            raise TimeoutError(
                f"timed out after {timeout}s waiting for {what}; last error: {last_error}"
            )
        time.sleep(interval)


@dataclass
class MotoServer:
    """``python -m moto.server`` on 127.0.0.1 in a child process."""

    port: int
    process: subprocess.Popen[bytes]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @classmethod
    def start(cls, port: int | None = None, log: Path | None = None) -> MotoServer:
        port = port or free_port()
        out: IO[Any] | int = open(log, "ab") if log else subprocess.DEVNULL  # noqa: SIM115
        process = subprocess.Popen(
            [sys.executable, "-m", "chromasync.motoserver", "-H", "127.0.0.1", "-p", str(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        server = cls(port, process)
        wait_for(server.healthy, 60, what=f"moto server on 127.0.0.1:{port}")
        return server

    def healthy(self) -> bool:
        if self.process.poll() is not None:
            raise RuntimeError(f"moto server exited with {self.process.returncode}")
        with urllib.request.urlopen(f"{self.url}/moto-api/", timeout=2) as response:
            return bool(response.status == 200)

    def reset(self) -> None:
        request = urllib.request.Request(f"{self.url}/moto-api/reset", method="POST")
        urllib.request.urlopen(request, timeout=10).close()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def redis_answers(url: str, timeout: float = 0.5) -> bool:
    """True when a Redis server answers PING at ``url``."""
    import redis

    try:
        client = redis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout)
        try:
            return bool(client.ping())
        finally:
            client.close()
    except (redis.RedisError, OSError, ValueError):
        return False


@dataclass
class ChromaServer:
    """``chroma run`` (the server shipped in the chromadb wheel) on 127.0.0.1."""

    port: int
    path: Path
    process: subprocess.Popen[bytes]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @classmethod
    def start(cls, path: Path, port: int | None = None, log: Path | None = None) -> ChromaServer:
        port = port or free_port()
        chroma = Path(sys.executable).with_name("chroma")
        out: IO[Any] | int = open(log, "ab") if log else subprocess.DEVNULL  # noqa: SIM115
        process = subprocess.Popen(
            [str(chroma), "run", "--path", str(path), "--host", "127.0.0.1", "--port", str(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        server = cls(port, path, process)
        wait_for(server.healthy, 60, interval=0.1, what=f"chroma server on 127.0.0.1:{port}")
        return server

    def healthy(self) -> bool:
        if self.process.poll() is not None:
            raise RuntimeError(f"chroma server exited with {self.process.returncode}")
        with urllib.request.urlopen(f"{self.url}/api/v2/heartbeat", timeout=2) as response:
            return bool(response.status == 200)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
