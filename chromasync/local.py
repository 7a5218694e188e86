"""Local stand-ins for the cloud: moto in server mode, and a Redis probe.

``chromasync run --demo`` and the tests use these so that nothing beyond what
pip installs is needed: moto serves SQS, DynamoDB + Streams and S3 over HTTP
on 127.0.0.1 (kombu's SQS transport talks pycurl, which moto's in-process
decorator cannot intercept, so it must be a real server).
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from chromasync.processes import spawn, stop_process

T = TypeVar("T")

#: Seconds a server has to exit after SIGTERM before it is killed.
STOP_TIMEOUT = 10.0

#: Requests moto lets through unchecked after :meth:`MotoServer.relax_iam`: moto
#: enforces IAM once it has let the count set by ``/moto-api/reset-auth`` through,
#: so "not enforced" is a count no run reaches.
RELAXED_NO_AUTH_ACTION_COUNT = 2**62


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
class LocalServer:
    """A server in a child process on 127.0.0.1: started, health-polled, stopped."""

    port: int
    process: subprocess.Popen[bytes]

    #: What the server is, for messages.
    kind = "server"

    def _wait_healthy(self, timeout: float = 60) -> None:
        wait_for(self.healthy, timeout, interval=0.1, what=f"{self.kind} on 127.0.0.1:{self.port}")

    def healthy(self) -> bool:
        if self.process.poll() is not None:
            raise RuntimeError(f"{self.kind} exited with {self.process.returncode}")
        return self.answers()

    def answers(self) -> bool:
        raise NotImplementedError

    def stop(self) -> None:
        stop_process(self.process, STOP_TIMEOUT)


@dataclass
class MotoServer(LocalServer):
    """moto in server mode (our :mod:`chromasync.motoserver` wrapper) on 127.0.0.1."""

    kind = "moto server"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def client_env(self) -> dict[str, str]:
        """The environment that points AWS clients (boto3, kombu) here, with moto's credentials."""
        return {
            "AWS_ENDPOINT_URL": self.url,
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
        }

    @classmethod
    def start(
        cls,
        port: int | None = None,
        log: Path | None = None,
        moto_serializer: bool = False,
        count_requests: bool = False,
    ) -> MotoServer:
        """Start one; ``moto_serializer`` keeps moto's slow response serializer for reads,
        ``count_requests`` counts requests and billed units (:meth:`requests`)."""
        port = port or free_port()
        command = [
            sys.executable,
            "-m",
            "chromasync.motoserver",
            "-H",
            "127.0.0.1",
            "-p",
            str(port),
        ]
        if moto_serializer:
            command.append("--moto-serializer")
        if count_requests:
            command.append("--count-requests")
        server = cls(port, spawn(command, log=log))
        server._wait_healthy()
        return server

    def answers(self) -> bool:
        with urllib.request.urlopen(f"{self.url}/moto-api/", timeout=2) as response:
            return bool(response.status == 200)

    def requests(self, reset: bool = False) -> dict[str, Any]:
        """What it has counted (started with ``count_requests``, or with
        ``CHROMASYNC_MOTO_COUNT_REQUESTS=1`` in its environment): see
        :mod:`chromasync.requestcount`. ``reset`` starts the count again, in the same step."""
        from chromasync.requestcount import COUNTS_PATH

        url = f"{self.url}{COUNTS_PATH}" + ("/reset" if reset else "")
        request = urllib.request.Request(url, method="POST" if reset else "GET")
        with urllib.request.urlopen(request, timeout=10) as response:
            answer: dict[str, Any] = json.loads(response.read())
        return answer

    def reset(self) -> None:
        """Empty every backend, IAM's users and policies included (enforcement stays as it is)."""
        request = urllib.request.Request(f"{self.url}/moto-api/reset", method="POST")
        urllib.request.urlopen(request, timeout=10).close()

    def enforce_iam(self) -> None:
        """Make every later request need the credentials of an IAM user that exists in moto.

        Requests are then authorised against the user's policies by
        :mod:`chromasync.motoiam` (resource ARNs and conditions as AWS evaluates
        them), so create the users, their policies and access keys first.
        """
        self._reset_auth(0)

    def relax_iam(self) -> None:
        """Stop checking credentials and policies again (moto's default)."""
        self._reset_auth(RELAXED_NO_AUTH_ACTION_COUNT)

    def _reset_auth(self, free_requests: int) -> None:
        # The count goes in the body as plain text: with urllib's default form
        # content type werkzeug consumes the body as a form and moto reads nothing.
        request = urllib.request.Request(
            f"{self.url}/moto-api/reset-auth",
            data=str(free_requests).encode("ascii"),
            method="POST",
            headers={"Content-Type": "text/plain"},
        )
        urllib.request.urlopen(request, timeout=10).close()


@dataclass
class ChromaServer(LocalServer):
    """``chroma run`` (the server shipped in the chromadb wheel) on 127.0.0.1."""

    path: Path = Path(".")
    kind = "chroma server"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @classmethod
    def start(cls, path: Path, port: int | None = None, log: Path | None = None) -> ChromaServer:
        port = port or free_port()
        chroma = Path(sys.executable).with_name("chroma")
        command = [
            str(chroma),
            "run",
            "--path",
            str(path),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ]
        server = cls(port, spawn(command, log=log), path)
        server._wait_healthy()
        return server

    def answers(self) -> bool:
        with urllib.request.urlopen(f"{self.url}/api/v2/heartbeat", timeout=2) as response:
            return bool(response.status == 200)


@dataclass
class RedisServer(LocalServer):
    """A ``redis-server`` of our own (nothing kept on disk), to stop and start at will."""

    kind = "redis-server"

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @classmethod
    def start(cls, directory: Path, port: int | None = None) -> RedisServer:
        port = port or free_port()
        command = [
            "redis-server",
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(directory),
        ]
        server = cls(port, spawn(command))
        server._wait_healthy(10)
        return server

    def answers(self) -> bool:
        return redis_answers(self.url)


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
