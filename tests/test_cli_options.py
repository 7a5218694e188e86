"""Options that name something refuse what they cannot use, before anything is read or sent."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.commands import clean_env

#: Each test runs ``python -m chromasync.cli``: a process, outside ``make test-fast``.
pytestmark = pytest.mark.slow


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["poll", "--batch-size", "0"], "--batch-size: must be 1..1000, got 0"),
        (["poll", "--batch-size", "1001"], "--batch-size: must be 1..1000, got 1001"),
        (["poll", "--batch-size", "ten"], "--batch-size: 'ten' is not a whole number"),
        (["replay", "--chunk-size", "0", "-"], "--chunk-size: must be at least 1, got 0"),
        (["replay", "--chunk-size", "1.5", "-"], "--chunk-size: '1.5' is not a whole number"),
        (["exporter", "--port", "99999"], "--port: must be 1..65535, got 99999"),
        (["exporter", "--port", "0"], "--port: must be 1..65535, got 0"),
        (["flower", "--port", "99999"], "--port: must be 1..65535, got 99999"),
        (["flower", "--no-auth", "--port", "-1"], "--port: must be 1..65535, got -1"),
        (["run", "--max-restarts", "-1"], "--max-restarts: must be at least 0, got -1"),
        (["run", "--restart-window", "0"], "--restart-window: must be at least 1, got 0"),
    ],
)
def test_a_whole_number_option_out_of_range_is_a_usage_error(args: list[str], message: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "chromasync.cli", *args],
        capture_output=True,
        text=True,
        timeout=60,
        input="",
    )
    assert done.returncode == 2, done.stderr
    assert message in done.stderr


@pytest.mark.parametrize(
    "command", [["dlq", "list"], ["dlq", "redrive"], ["verify"], ["snapshot", "list"]]
)
def test_an_unknown_collection_is_a_configuration_error_before_any_output(
    command: list[str],
) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "chromasync.cli", *command, "--collection", "nope"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**clean_env(), "CHROMASYNC_COLLECTIONS": "lines,words"},
    )
    assert done.returncode == 2, done.stdout + done.stderr
    assert done.stdout == ""
    assert (
        "unknown collection 'nope'; CHROMASYNC_COLLECTIONS names ['lines', 'words']" in done.stderr
    )
