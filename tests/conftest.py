"""Fixtures: a moto server for the session, a clean Redis db, and the env pointing at both.

Two lanes: ``make test`` runs everything; ``make test-fast`` leaves out the tests marked
``slow`` or ``real_store`` (see ``[tool.pytest.ini_options]`` markers in pyproject.toml).
A test is ``slow`` when it uses a whole-system fixture (:data:`WHOLE_SYSTEM_FIXTURES`,
marked here) or is marked in its module: it starts processes (workers, the demo, CLI
commands, a build, a linter) or waits out a dead service's retries.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
import redis

from chromasync.core.entities import REGISTRY
from tests.servers import MotoServer, redis_url
from tests.stack import Stack

#: Fixtures that build the whole system (moto, Redis, Chroma, often worker processes).
WHOLE_SYSTEM_FIXTURES = frozenset({"stack", "stack_env"})


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if WHOLE_SYSTEM_FIXTURES.intersection(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="session")
def moto_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoServer]:
    """One moto server for the session; its log (with server-side tracebacks) is kept."""
    server = MotoServer.start(log=tmp_path_factory.mktemp("moto") / "moto.log")
    yield server
    server.stop()


@pytest.fixture
def moto(moto_server: MotoServer) -> MotoServer:
    """The session's moto server, reset so each test starts empty."""
    moto_server.reset()
    return moto_server


@pytest.fixture
def redis_client() -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url())
    try:
        client.ping()
    except redis.ConnectionError as exc:
        pytest.fail(
            f"redis-server must run at {redis_url()} for the tests (make test starts it): {exc}"
        )
    client.flushdb()
    yield client
    client.flushdb()
    client.close()


@pytest.fixture
def aws_env(moto: MotoServer, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Environment for code under test: AWS clients go to the moto server."""
    env = moto.client_env()
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return {**os.environ, **env}


@pytest.fixture
def stack_env(
    aws_env: dict[str, str], redis_client: redis.Redis, tmp_path, monkeypatch: pytest.MonkeyPatch
) -> dict[str, str]:
    """Environment of a whole system: unique names, Chroma under tmp_path, Redis lock (db 15)."""
    import uuid

    suffix = uuid.uuid4().hex[:8]
    env = {
        "CHROMASYNC_TABLE": f"receipts-{suffix}",
        "CHROMASYNC_QUEUE_PREFIX": f"t{suffix}-",
        "CHROMASYNC_CHROMA_DIR": str(tmp_path / "chroma"),
        "CHROMASYNC_LOCK_URL": redis_url(),
        # Metrics and worker events go to the test db too, never to a shared db 0.
        "CHROMASYNC_METRICS_URL": redis_url(),
        "CHROMASYNC_EVENTS_URL": redis_url(),
        "CHROMASYNC_CHECKPOINT_URL": f"dynamodb://checkpoints-{suffix}",
        "CHROMASYNC_WAIT_TIME_SECONDS": "1",
        "ANONYMIZED_TELEMETRY": "False",
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("CHROMASYNC_CHROMA_URL", raising=False)
    monkeypatch.delenv("CELERY_BROKER_URL", raising=False)
    return {**aws_env, **env}


@pytest.fixture
def stack(stack_env: dict[str, str], tmp_path) -> Iterator[Stack]:
    system = Stack(stack_env, tmp_path)
    yield system
    system.stop()


#: Producer settings a developer's shell may hold; the producer tests start without them.
PRODUCER_VARIABLES = (
    "CELERY_BROKER_URL",
    "CHROMASYNC_FIFO",
    "CHROMASYNC_COLLECTIONS",
    "CHROMASYNC_MAX_CHANGES_PER_TASK",
    *(spec.flag for spec in REGISTRY),
)


@pytest.fixture
def producer_env(
    aws_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> Iterator[dict[str, str]]:
    """The producer's environment on moto with unique names; process-wide producer state rebuilt.

    Tests change settings with ``monkeypatch.setenv`` before building anything;
    the returned dict is the environment for subprocesses.
    """
    import uuid

    from producers import defaults

    suffix = uuid.uuid4().hex[:8]
    monkeypatch.setenv("CHROMASYNC_TABLE", f"receipts-{suffix}")
    monkeypatch.setenv("CHROMASYNC_QUEUE_PREFIX", f"p{suffix}-")
    monkeypatch.setenv("CHROMASYNC_CHECKPOINT_URL", f"dynamodb://checkpoints-{suffix}")
    for name in PRODUCER_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    defaults.reset()
    yield dict(os.environ)
    defaults.reset()
