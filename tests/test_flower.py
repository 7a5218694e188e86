"""Flower sees workers whose tasks ride on SQS: events go to Redis (db 15 here).

A real ``chromasync flower`` process, real workers (one per collection), real
tasks through moto's SQS; Flower is asked over HTTP what it saw.
"""

from __future__ import annotations

import base64
import itertools
import json
import re
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import redis

from chromasync.core.contract import APPLY_TASK_NAME
from chromasync.core.keys import image_pk, receipt_sk
from chromasync.local import RedisServer, free_port, wait_for
from chromasync.processes import spawn, stop_process
from chromasync.seed import ReceiptSpec, demo_receipts
from chromasync.workers import WorkerProcess
from tests.servers import redis_url
from tests.stack import Stack
from tests.test_worker_apply import batch, make_change

USER, PASSWORD = "ops", "flower-test-pw"


@contextmanager
def running_flower(env: dict[str, str], log: Path, *extra: str) -> Iterator[int]:
    """``chromasync flower`` on a free port until the block ends; yields the port."""
    port = free_port()
    log.unlink(missing_ok=True)
    process = spawn(
        [sys.executable, "-m", "chromasync.cli", "flower", "--port", str(port), *extra],
        log=log,
        env=env,
    )
    try:

        def listening() -> bool:
            if process.poll() is not None:
                raise RuntimeError(f"flower exited:\n{log.read_text(errors='replace')}")
            return status(port, "/healthcheck", auth=None) in (200, 401)

        wait_for(listening, 30, interval=0.1, what=f"flower on port {port}")
        yield port
    finally:
        stop_process(process, 10)


def _request(port: int, path: str, auth: tuple[str, str] | None) -> urllib.request.Request:
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}")
    if auth:
        token = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
    return request


def status(port: int, path: str, auth: tuple[str, str] | None = (USER, PASSWORD)) -> int:
    try:
        with urllib.request.urlopen(_request(port, path, auth), timeout=5) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code


def get_json(port: int, path: str) -> Any:
    with urllib.request.urlopen(_request(port, path, (USER, PASSWORD)), timeout=5) as response:
        return json.load(response)


def test_flower_shows_both_workers_online_and_our_tasks_with_short_args(
    stack_env: dict[str, str], redis_client: redis.Redis, tmp_path: Path
) -> None:
    env = {
        **stack_env,
        "CHROMASYNC_EVENTS_URL": redis_url(),
        "CHROMASYNC_FLOWER_USER": USER,
        "CHROMASYNC_FLOWER_PASSWORD": PASSWORD,
    }
    stack = Stack(env, tmp_path)
    try:
        with running_flower(env, tmp_path / "flower.log") as port:
            # Events published before Flower's event queue is bound are dropped by Redis.
            wait_for(
                lambda: redis_client.exists("_kombu.binding.celeryev"),
                20,
                what="flower to bind its event queue",
            )
            receipts = demo_receipts(2, lines=2, words_per_line=2)
            stack.seed(receipts)
            stack.start_workers()
            poller = stack.poller()
            stack.drain(poller)  # the seeded INSERTs: one task per collection
            spec = receipts[0]
            stack.table.update_item(
                Key={
                    "PK": image_pk(spec.image_id),
                    "SK": f"{receipt_sk(spec.receipt_id)}#METADATA",
                },
                UpdateExpression="SET merchant_name = :m",
                ExpressionAttributeValues={":m": "FLOWER TEST LLC"},
            )
            stack.drain(poller)
            # Another service's send_task carries no argsrepr: Celery's 1 KiB repr is shown.
            big = batch(stack.words, *[make_change("RECEIPT_METADATA", "MODIFY", spec)] * 40)
            stack.send(big.to_payload(), stack.words)
            wait_for(stack.queues_empty, 30, interval=0.2, what="the raw task to be applied")

            hostnames = {f"{c}@" for c in stack.settings.collections}

            def both_online() -> list[dict[str, Any]]:
                workers = get_json(port, "/workers?json=1")["data"]
                online = [w for w in workers if w["status"] and w["heartbeats"]]
                names = {w["hostname"].split("@")[0] + "@" for w in online}
                return online if names == hostnames else []

            wait_for(both_online, 15, interval=0.2, what="both workers online in flower")
            statuses = get_json(port, "/api/workers?status=true")
            assert sorted(statuses.values()) == [True, True]

            def our_tasks_done() -> list[dict[str, Any]]:
                tasks = list(get_json(port, "/api/tasks").values())
                done = [t for t in tasks if t["state"] == "SUCCESS"]
                return tasks if len(done) == len(tasks) >= 5 else []

            tasks = wait_for(our_tasks_done, 15, interval=0.2, what="five tasks SUCCESS in flower")
            assert {t["name"] for t in tasks} == {APPLY_TASK_NAME}
            assert {t["worker"].split("@")[0] for t in tasks} == set(stack.settings.collections)
            produced = [t for t in tasks if " batch " in t["args"]]
            assert len(produced) == 4  # seeded INSERTs and the edit, per collection
            for task in produced:
                # The producer's summary, e.g. "['lines batch 1a2b3c4d: 1 changes (...)']".
                assert task["args"].startswith("['") and len(task["args"]) < 200, task["args"]
                assert task["kwargs"] == "{}"
                assert "'status': 'applied'" in task["result"] and len(task["result"]) < 600
            (raw,) = [t for t in tasks if " batch " not in t["args"]]
            assert len(json.dumps(big.to_payload())) > 10_000
            # Celery's saferepr of a missing argsrepr: nested levels elided, at most 1 KiB.
            assert raw["args"].startswith("[{'schema_version': 1") and "{...}" in raw["args"]
            assert len(raw["args"]) <= 1024
            assert "'status': 'applied'" in raw["result"]

            assert status(port, "/api/tasks", auth=None) == 401
            assert status(port, "/api/workers", auth=(USER, "wrong")) == 401
            assert status(port, "/tasks") == 200
    finally:
        stack.stop()


def test_flower_refuses_to_start_without_a_password_unless_told(
    stack_env: dict[str, str], redis_client: redis.Redis, tmp_path: Path
) -> None:
    env = {**stack_env, "CHROMASYNC_EVENTS_URL": redis_url()}
    env.pop("CHROMASYNC_FLOWER_PASSWORD", None)
    refused = subprocess.run(
        [sys.executable, "-m", "chromasync.cli", "flower", "--port", str(free_port())],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert refused.returncode == 2
    assert "CHROMASYNC_FLOWER_PASSWORD is not set" in refused.stderr
    assert "--no-auth" in refused.stderr

    log = tmp_path / "flower-open.log"
    with running_flower(env, log, "--no-auth") as port:
        assert status(port, "/tasks", auth=None) == 200
        # Flower itself keeps its API closed without auth (FLOWER_UNAUTHENTICATED_API opens it).
        assert status(port, "/api/tasks", auth=None) == 401
    assert "WARNING: basic auth is off (--no-auth)" in log.read_text()


def flower_paths() -> list[str]:
    """One path per route in Flower's own table, parameters filled in, and Tornado's own.

    Read from the installed Flower, so a route a later version adds is checked too.
    """
    import flower.urls

    paths: list[str] = []
    for route in flower.urls.handlers:
        pattern = route.regex.pattern if hasattr(route, "regex") else route[0]
        path = pattern.rstrip("$").replace("/?", "").replace("(.+)", "x").replace("(.*)", "x")
        paths.append("/no-such-page" if path == ".*" else path)
    # Tornado serves these itself, ahead of the table, for an app with a static_path.
    return ["/favicon.ico", "/robots.txt", *paths]


def call(port: int, method: str, path: str, auth: tuple[str, str] | None) -> tuple[int, bytes]:
    request = _request(port, path, auth)
    request.method = method
    if method == "POST":
        request.data = b"{}"
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return int(response.status), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def test_every_route_but_the_healthcheck_needs_the_password(
    stack_env: dict[str, str], redis_client: redis.Redis, tmp_path: Path
) -> None:
    env = {
        **stack_env,
        "CHROMASYNC_FLOWER_USER": USER,
        "CHROMASYNC_FLOWER_PASSWORD": PASSWORD,
    }
    paths = flower_paths()
    assert {"/metrics", "/static/x", "/api/tasks", "/api/task/apply/x", "/login"} <= set(paths)
    with running_flower(env, tmp_path / "flower.log") as port:
        for method, path, auth in itertools.product(
            ("GET", "POST"), paths, (None, (USER, "wrong"), ("someone", PASSWORD))
        ):
            code, body = call(port, method, path, auth)
            if path == "/healthcheck":
                if method == "GET":
                    assert (code, body) == (200, b"OK"), (path, auth)
                continue
            assert code == 401, (method, path, auth, code, body[:200])
            assert b"flower_" not in body and b"celery" not in body.lower()
        # With the password, what was closed answers.
        code, metrics = call(port, "GET", "/metrics", (USER, PASSWORD))
        assert code == 200 and b"flower_events_total" in metrics
        tasks_page = call(port, "GET", "/tasks", (USER, PASSWORD))[1].decode()
        stylesheet = re.search(r'href="(/static/[^"?]+\.css)', tasks_page)
        assert stylesheet, tasks_page[:500]
        assert call(port, "GET", stylesheet.group(1), (USER, PASSWORD))[0] == 200
        assert call(port, "GET", stylesheet.group(1), None)[0] == 401
        assert call(port, "GET", "/no-such-page", (USER, PASSWORD))[0] == 404


def _apply_one(stack: Stack, collection: str, spec: ReceiptSpec, worker: WorkerProcess) -> None:
    before = worker.log_tail(400).count("succeeded in")
    change = make_change("RECEIPT_METADATA", "MODIFY", spec)
    stack.send(batch(collection, change).to_payload(), collection)
    wait_for(
        lambda: worker.log_tail(400).count("succeeded in") > before,
        30,
        interval=0.2,
        what=f"a {collection} task to succeed without the events channel",
    )


@pytest.mark.skipif(not shutil.which("redis-server"), reason="needs redis-server to stop one")
def test_workers_apply_tasks_and_stop_while_the_events_channel_is_down(
    stack_env: dict[str, str], tmp_path: Path
) -> None:
    """Events are best effort: a Redis that dies, or is not there, never holds tasks up."""
    events = RedisServer.start(tmp_path)
    env = {**stack_env, "CHROMASYNC_EVENTS_URL": events.url}
    stack = Stack(env, tmp_path)
    try:
        (spec,) = demo_receipts(1, lines=1, words_per_line=2)
        stack.seed([spec])
        words = stack.start_worker(stack.words)
        assert "worker events go to" in words.log_tail(200)
        events.stop()
        # A worker started without it: one warning, events off, tasks applied. Its
        # start (seconds) also lets the first worker's 2 s heartbeat meet the dead Redis.
        lines = stack.start_worker(stack.lines)
        _apply_one(stack, stack.lines, spec, lines)
        assert lines.log_tail(400).count("worker events are off") == 1
        # Redis died under a running worker: heartbeats and task events fail fast.
        _apply_one(stack, stack.words, spec, words)
        # Warm shutdown sends worker-offline; it must not wait for Redis either.
        started = time.monotonic()
        assert words.stop(timeout=15) == 0
        assert time.monotonic() - started < 10
    finally:
        stack.stop()
        events.stop()
