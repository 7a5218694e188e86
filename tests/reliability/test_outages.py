"""Redis, the AWS endpoint (moto) and the Chroma server go away mid-run and come back:
work pauses, retries, then completes, and nothing is lost."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
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


@dataclass(frozen=True)
class Outage:
    """A server the workers need, stopped mid-run, then started again on its port."""

    #: The setting that points the system at the server.
    variable: str
    start: Callable[[Path, int | None], RedisServer | ChromaServer]
    #: The worker (0 lines, 1 words) whose log shows it met the outage, and how.
    worker: int
    sign: str
    #: Chroma answers during the outage, so the test can see that nothing was applied.
    chroma_up: bool


OUTAGES = [
    pytest.param(
        Outage(
            "CHROMASYNC_LOCK_URL",
            lambda tmp, port: RedisServer.start(tmp, port=port),
            0,
            "LockBackendError",
            chroma_up=True,
        ),
        id="redis",
    ),
    pytest.param(
        Outage(
            "CHROMASYNC_CHROMA_URL",
            lambda tmp, port: ChromaServer.start(
                tmp / "chroma-server", port=port, log=tmp / "chroma.log"
            ),
            1,
            "retrying",
            chroma_up=False,
        ),
        id="chroma_server",
    ),
]


@pytest.mark.parametrize("outage", OUTAGES)
def test_a_server_outage_pauses_work_then_it_completes(
    patient_env: dict[str, str], tmp_path: Path, outage: Outage
) -> None:
    server = outage.start(tmp_path, None)
    patient_env[outage.variable] = server.url
    stack = Stack(patient_env, tmp_path)
    try:
        with stack.running(RECEIPTS):
            server.stop()
            stack.edit_merchants(RECEIPTS, 1)
            worker = stack.workers[outage.worker]
            wait_for(
                lambda: outage.sign in worker.log_tail(300),
                60,
                interval=0.2,
                what="the workers to meet the outage",
            )
            if outage.chroma_up:
                assert not stack.at_edition(RECEIPTS, 1)
            server = outage.start(tmp_path, server.port)
            stack.wait_edition(RECEIPTS, 1, 90, "the edits after the server came back")
            stack.wait_drained()
    finally:
        stack.stop()
        server.stop()


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
