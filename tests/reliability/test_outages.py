"""Redis, the AWS endpoint (moto) and the Chroma server go away mid-run and come back:
work pauses, retries, then completes, and nothing is lost."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
import redis

from chromasync.local import ChromaServer, free_port, wait_for
from chromasync.seed import demo_receipts, merchant_fields
from producers.entities import image_pk, receipt_sk
from tests.stack import Stack, run_poller_in_thread


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


def _edit(stack: Stack, receipts, edition: int) -> None:
    for index, spec in enumerate(receipts):
        stack.table.put_item(
            Item={
                "PK": image_pk(spec.image_id),
                "SK": f"{receipt_sk(spec.receipt_id)}#METADATA",
                **merchant_fields(index, edition),
            }
        )


def _at_edition(stack: Stack, receipts, edition: int) -> bool:
    by_receipt = {(s.image_id, s.receipt_id): i for i, s in enumerate(receipts)}
    for name in (stack.lines, stack.words):
        for meta in stack.collection(name).get(include=["metadatas"])["metadatas"]:
            index = by_receipt[(meta["image_id"], meta["receipt_id"])]
            if meta.get("merchant_name") != merchant_fields(index, edition)["merchant_name"]:
                return False
    return True


class RedisProcess:
    """A redis-server of our own on a free port, so it can be stopped and started."""

    def __init__(self, directory: Path) -> None:
        self.port = free_port()
        self.directory = directory
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.directory),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for(lambda: redis.Redis.from_url(self.url).ping(), 10, what="redis-server")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)


def test_redis_outage_pauses_work_then_it_completes(
    patient_env: dict[str, str], tmp_path: Path
) -> None:
    lock_redis = RedisProcess(tmp_path)
    lock_redis.start()
    patient_env["CHROMASYNC_LOCK_URL"] = lock_redis.url
    stack = Stack(patient_env, tmp_path)
    thread = stop = None
    try:
        receipts = demo_receipts(4, lines=2, words_per_line=3)
        stack.seed(receipts)
        stack.start_workers()
        thread, stop = run_poller_in_thread(stack.poller())
        lock_redis.stop()
        _edit(stack, receipts, 1)
        worker = stack.workers[0]
        wait_for(
            lambda: "LockBackendError" in worker.log_tail(300),
            60,
            interval=0.2,
            what="the workers to meet the outage",
        )
        assert not _at_edition(stack, receipts, 1)
        lock_redis.start()
        wait_for(
            lambda: _at_edition(stack, receipts, 1),
            90,
            interval=0.5,
            what="the edits after Redis came back",
        )
        wait_for(stack.queues_empty, 30, interval=0.5, what="queues to drain")
        assert stack.queues_empty(include_dlq=True)
    finally:
        if stop is not None:
            stop.set()
            thread.join(10)
        stack.stop()
        lock_redis.stop()


def test_aws_endpoint_outage_pauses_work_then_it_completes(
    patient_env: dict[str, str], tmp_path: Path, moto_server
) -> None:
    """moto keeps its state in memory, so a restart would lose the queues and the table
    themselves (AWS never does); the outage is a frozen server (SIGSTOP) for seconds."""
    stack = Stack(patient_env, tmp_path)
    thread = stop = None
    try:
        receipts = demo_receipts(4, lines=2, words_per_line=3)
        stack.seed(receipts)
        stack.start_workers()
        thread, stop = run_poller_in_thread(stack.poller())
        _edit(stack, receipts, 1)
        os.kill(moto_server.process.pid, signal.SIGSTOP)
        try:
            # While the endpoint is frozen nothing moves; the workers stay up.
            time.sleep(5)  # the outage itself: a duration, not a synchronisation
            assert all(w.alive() for w in stack.workers)
        finally:
            os.kill(moto_server.process.pid, signal.SIGCONT)
        wait_for(
            lambda: _at_edition(stack, receipts, 1),
            120,
            interval=0.5,
            what="the edits after the endpoint came back",
        )
        _edit(stack, receipts, 2)
        wait_for(
            lambda: _at_edition(stack, receipts, 2),
            60,
            interval=0.5,
            what="later edits, once recovered",
        )
        wait_for(lambda: stack.queues_empty(include_dlq=True), 30, interval=0.5, what="queues")
    finally:
        if stop is not None:
            stop.set()
            thread.join(30)
        stack.stop()


def test_chroma_server_restart_pauses_work_then_it_completes(
    patient_env: dict[str, str], tmp_path: Path
) -> None:
    path = tmp_path / "chroma-server"
    server = ChromaServer.start(path, log=tmp_path / "chroma.log")
    patient_env["CHROMASYNC_CHROMA_URL"] = server.url
    stack = Stack(patient_env, tmp_path)
    thread = stop = None
    try:
        receipts = demo_receipts(4, lines=2, words_per_line=3)
        stack.seed(receipts)
        stack.start_workers()
        thread, stop = run_poller_in_thread(stack.poller())
        server.stop()
        _edit(stack, receipts, 1)
        worker = stack.workers[1]
        wait_for(
            lambda: "retrying" in worker.log_tail(300),
            60,
            interval=0.2,
            what="the workers to meet the outage",
        )
        server = ChromaServer.start(path, port=server.port, log=tmp_path / "chroma.log")
        wait_for(
            lambda: _at_edition(stack, receipts, 1),
            90,
            interval=0.5,
            what="the edits after Chroma came back",
        )
        wait_for(lambda: stack.queues_empty(include_dlq=True), 30, interval=0.5, what="queues")
    finally:
        if stop is not None:
            stop.set()
            thread.join(10)
        stack.stop()
        server.stop()
