"""Redis, the AWS endpoint (moto) and the Chroma server go away mid-run and come back:
work pauses, retries, then completes, and nothing is lost."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from chromasync.local import ChromaServer, MotoServer, RedisServer, wait_for
from chromasync.seed import demo_receipts
from tests.stack import Stack

RECEIPTS = demo_receipts(4, lines=2, words_per_line=3)


@pytest.fixture
def patient_env(stack_env: dict[str, str]) -> dict[str, str]:
    """Retries fast and long enough to outlast a few seconds of outage."""
    stack_env.update(
        {
            "CHROMASYNC_RETRY_BACKOFF_BASE": "0.2",
            "CHROMASYNC_RETRY_BACKOFF_MAX": "1",
            "CHROMASYNC_MAX_RETRIES": "60",
            "CHROMASYNC_LOCK_WAIT": "1",
            "CHROMASYNC_LOCK_TTL": "5",
            "CHROMASYNC_LOCK_SAFETY_MARGIN": "1",
        }
    )
    return stack_env


def test_redis_outage_pauses_work_then_it_completes(
    patient_env: dict[str, str], tmp_path: Path
) -> None:
    lock_redis = RedisServer.start(tmp_path)
    patient_env["CHROMASYNC_LOCK_URL"] = lock_redis.url
    stack = Stack(patient_env, tmp_path)
    try:
        with stack.running(RECEIPTS):
            lock_redis.stop()
            stack.edit_merchants(RECEIPTS, 1)
            worker = stack.workers[0]
            wait_for(
                lambda: "LockBackendError" in worker.log_tail(300),
                60,
                interval=0.2,
                what="the workers to meet the outage",
            )
            assert not stack.at_edition(RECEIPTS, 1)
            lock_redis = RedisServer.start(tmp_path, port=lock_redis.port)
            stack.wait_edition(RECEIPTS, 1, 90, "the edits after Redis came back")
            stack.wait_drained()
    finally:
        stack.stop()
        lock_redis.stop()


def test_aws_endpoint_outage_pauses_work_then_it_completes(
    patient_env: dict[str, str], tmp_path: Path, moto_server: MotoServer
) -> None:
    """moto keeps its state in memory, so a restart would lose the queues and the table
    themselves (AWS never does); the outage is a frozen server (SIGSTOP) for seconds."""
    stack = Stack(patient_env, tmp_path)
    try:
        with stack.running(RECEIPTS):
            stack.edit_merchants(RECEIPTS, 1)
            os.kill(moto_server.process.pid, signal.SIGSTOP)
            try:
                time.sleep(5)  # the outage itself: a duration, not a synchronisation
                assert all(w.alive() for w in stack.workers)
            finally:
                os.kill(moto_server.process.pid, signal.SIGCONT)
            stack.wait_edition(RECEIPTS, 1, 120, "the edits after the endpoint came back")
            stack.edit_merchants(RECEIPTS, 2)
            stack.wait_edition(RECEIPTS, 2, 60, "later edits, once recovered")
            stack.wait_drained()
    finally:
        stack.stop()


def test_chroma_server_restart_pauses_work_then_it_completes(
    patient_env: dict[str, str], tmp_path: Path
) -> None:
    path = tmp_path / "chroma-server"
    server = ChromaServer.start(path, log=tmp_path / "chroma.log")
    patient_env["CHROMASYNC_CHROMA_URL"] = server.url
    stack = Stack(patient_env, tmp_path)
    try:
        with stack.running(RECEIPTS):
            server.stop()
            stack.edit_merchants(RECEIPTS, 1)
            worker = stack.workers[1]
            wait_for(
                lambda: "retrying" in worker.log_tail(300),
                60,
                interval=0.2,
                what="the workers to meet the outage",
            )
            server = ChromaServer.start(path, port=server.port, log=tmp_path / "chroma.log")
            stack.wait_edition(RECEIPTS, 1, 90, "the edits after Chroma came back")
            stack.wait_drained()
    finally:
        stack.stop()
        server.stop()
