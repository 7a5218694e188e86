"""``chromasync run`` as an operator runs it: checked before it starts, supervised while it
runs, and never leaving a process behind.

Every ``run`` here is a real process against the test moto and Redis, with real
``celery`` workers. Processes are found through ``/proc``: each test's environment
carries a unique queue prefix, which every child inherits, so "nothing left" means no
process at all with that prefix in its environment once ``run`` has exited.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import boto3
import pytest

from chromasync.local import free_port, wait_for
from chromasync.processes import stop_process
from chromasync.provision import provision
from chromasync.seed import demo_receipts
from tests.stack import Stack

#: Seconds a run may take to start its workers on a busy 2-core machine.
START_TIMEOUT = 120


def _environ(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:  # gone meanwhile, or not ours to read
        return b""


def _pids() -> list[int]:
    return [int(entry) for entry in os.listdir("/proc") if entry.isdigit()]


def processes_with(env: dict[str, str]) -> list[int]:
    """Pids of live processes (not this one) started with this test's queue prefix."""
    marker = f"CHROMASYNC_QUEUE_PREFIX={env['CHROMASYNC_QUEUE_PREFIX']}".encode()
    found = []
    for pid in _pids():
        if pid == os.getpid():
            continue
        if marker in _environ(pid).split(b"\0") and not _zombie(pid):
            found.append(pid)
    return found


def _zombie(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rpartition(")")[2].split()[0] == "Z"


def _parent(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat.rpartition(")")[2].split()[1])


def _cmdline(pid: int) -> list[str]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")
    except OSError:
        return []


def worker_pid(run_pid: int, queue: str) -> int | None:
    """The celery worker ``run`` started for ``queue`` (its main process), if one runs."""
    for pid in _pids():
        if _parent(pid) != run_pid or _zombie(pid):
            continue
        command = _cmdline(pid)
        if "celery" in command and command[command.index("-Q") + 1 :][:1] == [queue]:
            return pid
    return None


@dataclass
class Run:
    """One ``chromasync run`` process; its stdout and stderr go to files read by polling."""

    process: subprocess.Popen[bytes]
    out: Path
    err: Path

    @property
    def stdout(self) -> str:
        return self.out.read_text(errors="replace")

    @property
    def stderr(self) -> str:
        return self.err.read_text(errors="replace")

    def wait_running(self) -> None:
        def running() -> bool:
            if self.process.poll() is not None:
                raise AssertionError(
                    f"run exited with {self.process.returncode}:\n{self.stdout}\n{self.stderr}"
                )
            return "chromasync running" in self.stdout

        wait_for(running, START_TIMEOUT, interval=0.2, what="chromasync run to say running")

    def wait_exit(self, timeout: float = 60) -> int:
        return self.process.wait(timeout)


def start_run(env: dict[str, str], cwd: Path, *args: str) -> Run:
    out, err = cwd / "run.out", cwd / "run.err"
    with out.open("wb") as stdout, err.open("wb") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-m", "chromasync.cli", "run", *args],
            env=env,
            cwd=cwd,
            stdout=stdout,
            stderr=stderr,
        )
    return Run(process, out, err)


def run_to_end(env: dict[str, str], cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "chromasync.cli", "run", *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture
def running(stack: Stack, tmp_path: Path) -> Iterator[list[Run]]:
    """Runs started by a test; whatever it left is stopped (and reported) afterwards."""
    runs: list[Run] = []
    yield runs
    for run in runs:
        stop_process(run.process, 60)
    left = processes_with(stack.env)
    for pid in left:
        os.kill(pid, signal.SIGKILL)
    assert not left, f"processes left behind: {[_cmdline(p) for p in left]}"


def assert_nothing_left(env: dict[str, str]) -> None:
    """Every child of the run is gone (polled: a group being reaped may take a moment)."""
    try:
        wait_for(lambda: not processes_with(env), 10, interval=0.2, what="no process left")
    except TimeoutError:
        left = processes_with(env)
        raise AssertionError(f"processes left behind: {[_cmdline(p) for p in left]}") from None


# -- before anything starts ---------------------------------------------------------------


def test_run_without_the_table_exits_3_naming_it_and_starts_nothing(
    stack_env: dict[str, str], tmp_path: Path
) -> None:
    """What issue 14 saw: run exited and two celery workers kept running with parent 1."""
    provision(stack_env)  # queues and checkpoint table, not the source table
    done = run_to_end(stack_env, tmp_path)
    assert done.returncode == 3, done.stdout + done.stderr
    assert f"DynamoDB table {stack_env['CHROMASYNC_TABLE']!r} does not exist" in done.stderr
    assert "running" not in done.stdout
    assert_nothing_left(stack_env)


def _closed_port_url(scheme: str, path: str = "") -> str:
    return f"{scheme}://127.0.0.1:{free_port()}{path}"


@pytest.mark.parametrize(
    ("setting", "value", "status", "named"),
    [
        ("CHROMASYNC_LOCK_URL", "foo://x", 2, "CHROMASYNC_LOCK_URL='foo://x' is not a valid URL"),
        ("CHROMASYNC_LOCK_URL", "redis://", 2, "CHROMASYNC_LOCK_URL="),
        ("CHROMASYNC_CHROMA_URL", "ftp://chroma", 2, "CHROMASYNC_CHROMA_URL='ftp://chroma'"),
        ("CHROMASYNC_CHECKPOINT_URL", "s3://x", 2, "CHROMASYNC_CHECKPOINT_URL='s3://x'"),
        ("CHROMASYNC_METRICS_URL", "http://x", 2, "CHROMASYNC_METRICS_URL='http://x'"),
        ("CHROMASYNC_EVENTS_URL", "amqp://x", 2, "CHROMASYNC_EVENTS_URL='amqp://x'"),
        (
            "CHROMASYNC_LOCK_SAFETY_MARGIN",
            "40",
            2,
            "CHROMASYNC_LOCK_SAFETY_MARGIN=40.0 must be smaller than CHROMASYNC_LOCK_TTL",
        ),
        ("CHROMASYNC_POLLING_INTERVAL", "soon", 2, "CHROMASYNC_POLLING_INTERVAL='soon'"),
        ("CHROMASYNC_LOCK_URL", _closed_port_url("redis", "/0"), 3, "lock store redis://"),
        ("CHROMASYNC_CHROMA_URL", _closed_port_url("http"), 3, "Chroma server at http://"),
        (
            "CHROMASYNC_CHECKPOINT_URL",
            "dynamodb://no-such-checkpoints",
            3,
            "DynamoDB table 'no-such-checkpoints' does not exist",
        ),
        ("CHROMASYNC_QUEUE_PREFIX", "unprovisioned-", 3, "SQS queue 'unprovisioned-lines'"),
    ],
)
def test_run_checks_every_setting_and_service_before_it_says_running(
    stack: Stack, tmp_path: Path, setting: str, value: str, status: int, named: str
) -> None:
    done = run_to_end({**stack.env, setting: value}, tmp_path)
    assert done.returncode == status, done.stdout + done.stderr
    assert named in done.stderr
    assert "running" not in done.stdout
    assert "Traceback" not in done.stderr
    assert_nothing_left(stack.env)


@pytest.mark.parametrize(
    ("setting", "value", "status", "named"),
    [
        ("CHROMASYNC_LOCK_URL", "foo://x", 2, "CHROMASYNC_LOCK_URL='foo://x' is not a valid URL"),
        ("CHROMASYNC_LOCK_URL", _closed_port_url("redis", "/0"), 3, "did not answer"),
        ("CHROMASYNC_QUEUE_PREFIX", "unprovisioned-", 3, "SQS queue 'unprovisioned-words'"),
    ],
)
def test_a_worker_refuses_to_start_with_one_line_saying_why(
    stack: Stack, tmp_path: Path, setting: str, value: str, status: int, named: str
) -> None:
    log = tmp_path / "worker.log"
    done = subprocess.run(
        [sys.executable, "-m", "celery", "-A", "tasks", "worker", "-Q", stack.words, "-c", "1"],
        env={**stack.env, setting: value},
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        timeout=120,
    )
    text = log.read_text()
    assert done.returncode == status, text
    refusals = [line for line in text.splitlines() if "chromasync worker cannot start" in line]
    assert len(refusals) == 1 and named in refusals[0], text
    assert " ready." not in text


def test_run_options_keep_the_demo_and_the_pipeline_apart(tmp_path: Path) -> None:
    usage = run_to_end(dict(os.environ), tmp_path, "--workdir", "x")
    assert usage.returncode == 2
    assert "--workdir is for --demo" in usage.stderr
    text = run_to_end(dict(os.environ), tmp_path, "--help").stdout
    assert "default: .chromasync/logs" in re.sub(r"\s+", " ", text)


# -- supervised ------------------------------------------------------------------------------


def test_a_killed_worker_is_restarted_counted_and_the_pipeline_goes_on(
    stack: Stack, tmp_path: Path, running: list[Run]
) -> None:
    receipts = demo_receipts(2, lines=2, words_per_line=2)
    stack.seed(receipts)
    run = start_run(stack.env, tmp_path)
    running.append(run)
    run.wait_running()
    # No --log-dir: the pipeline's default, relative to where run was started.
    log = tmp_path / ".chromasync" / "logs" / f"worker-{stack.lines}.log"
    assert log.exists()
    assert not (tmp_path / ".chromasync" / "demo").exists()
    wait_for(stack.queues_empty, 60, interval=0.2, what="the seeded inserts to be applied")

    killed = worker_pid(run.process.pid, stack.lines)
    assert killed is not None
    os.kill(killed, signal.SIGKILL)

    def restarted() -> int | None:
        pid = worker_pid(run.process.pid, stack.lines)
        return pid if pid not in (None, killed) else None

    wait_for(restarted, 30, interval=0.2, what="a new lines worker")
    assert run.process.poll() is None
    wait_for(
        lambda: log.read_text().count(" ready.") == 2,
        START_TIMEOUT,
        interval=0.2,
        what="the new worker to consume",
    )
    assert f"restarting worker:{stack.lines} (restart 1 within 300s)" in run.stderr
    assert f"worker:{stack.lines} stopped; restarting it in 1.0s" in run.stderr

    stack.edit_merchants(receipts, 1)
    stack.wait_edition(receipts, 1, 90, "the edit applied by the restarted worker")

    status = stack.cli("status")
    assert re.search(rf"worker:{stack.lines}\s+1\n", status.stdout), status.stdout

    run.process.send_signal(signal.SIGTERM)
    assert run.wait_exit() == 0, run.stderr
    assert_nothing_left(stack.env)


def test_a_stopped_poller_is_restarted_and_resumes(
    stack: Stack, tmp_path: Path, running: list[Run]
) -> None:
    receipts = demo_receipts(2, lines=2, words_per_line=2)
    stack.seed(receipts)
    run = start_run(stack.env, tmp_path)
    running.append(run)
    run.wait_running()
    # The checkpoint table goes away: the poller's next checkpoint raises MissingResource,
    # which ends its thread (no retry provisions anything).
    checkpoints = stack.env["CHROMASYNC_CHECKPOINT_URL"].removeprefix("dynamodb://")
    dynamodb = boto3.client("dynamodb", **stack.settings.aws.client_kwargs())
    dynamodb.delete_table(TableName=checkpoints)
    stack.edit_merchants(receipts, 1)
    wait_for(lambda: "poller stopped; restarting it" in run.stderr, 60, what="the poller to stop")
    assert f"DynamoDB table {checkpoints!r} does not exist" in run.stderr
    provision(stack.env)  # back, empty: the poller starts again from the stream's start

    stack.edit_merchants(receipts, 2)
    stack.wait_edition(receipts, 2, 90, "an edit read by the restarted poller")
    assert run.process.poll() is None
    assert "restarting poller (restart 1 within 300s)" in run.stderr
    status = stack.cli("status")
    assert re.search(r"poller\s+[1-9]\d*\n", status.stdout), status.stdout

    run.process.send_signal(signal.SIGTERM)
    assert run.wait_exit() == 0, run.stderr
    assert_nothing_left(stack.env)


def test_workers_shut_down_when_run_itself_is_killed(
    stack: Stack, tmp_path: Path, running: list[Run]
) -> None:
    run = start_run(stack.env, tmp_path)
    running.append(run)
    run.wait_running()
    workers = [worker_pid(run.process.pid, q) for q in (stack.lines, stack.words)]
    assert None not in workers
    run.process.kill()  # SIGKILL: run cannot stop anything itself
    run.wait_exit()
    # Each worker was told by the kernel (SIGTERM) and shut down warm.
    wait_for(
        lambda: not processes_with(stack.env), 30, interval=0.2, what="the orphaned workers to stop"
    )


def test_a_worker_that_dies_at_once_every_time_stops_run_naming_it(
    stack: Stack, tmp_path: Path, running: list[Run]
) -> None:
    run = start_run(stack.env, tmp_path, "--max-restarts", "2", "--restart-window", "120")
    running.append(run)
    run.wait_running()
    # The disk under the lines collection goes away: a file where its directory was.
    chroma = Path(stack.env["CHROMASYNC_CHROMA_DIR"])
    shutil.rmtree(chroma)
    chroma.write_text("not a directory")
    killed = worker_pid(run.process.pid, stack.lines)
    assert killed is not None
    os.kill(killed, signal.SIGKILL)

    started = time.monotonic()
    status = run.wait_exit(START_TIMEOUT)
    assert status == 1, run.stderr
    err = run.stderr
    assert f"worker:{stack.lines} stopped 3 times within 120s; giving up" in err
    assert "exited with status 2" in err
    assert "chromasync worker cannot start: ConfigError: CHROMASYNC_CHROMA_DIR=" in err
    assert err.count(f"restarting worker:{stack.lines} (restart") == 2
    assert time.monotonic() - started < START_TIMEOUT
    assert_nothing_left(stack.env)
