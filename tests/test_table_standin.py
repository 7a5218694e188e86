"""dynalite serves what the worker and the DynamoDB lock need, and lacks what it is said to.

Skipped where dynalite is not installed: tests reach no registry
(``python -c 'import benchmarks.table_standin as t; t.install()'`` installs it).
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from benchmarks import table_standin
from benchmarks.table_probe import check_api

pytestmark = pytest.mark.skipif(
    shutil.which("node") is None or not table_standin.installed(),
    reason="dynalite is not installed (benchmarks.table_standin.install())",
)

#: What the module docstring says dynalite lacks, by the probe's names.
LACKING = {
    "TransactWriteItems",
    "UpdateTimeToLive",
    "DynamoDB Streams (StreamSpecification, ListStreams)",
}


@pytest.fixture
def dynalite(tmp_path: Path) -> Iterator[table_standin.DynaliteServer]:
    server = table_standin.DynaliteServer.start(log=tmp_path / "dynalite.log")
    try:
        yield server
    finally:
        server.stop()


def test_serves_the_reads_and_atomic_conditional_writes(
    dynalite: table_standin.DynaliteServer,
) -> None:
    results = check_api(dynalite.url)
    failing = {what for what, ok, _ in results if not ok}
    assert failing == LACKING, results
    assert dynalite.url.startswith("http://127.0.0.1:")


def test_stop_ends_the_process(dynalite: table_standin.DynaliteServer) -> None:
    dynalite.stop()
    assert dynalite.process.poll() is not None
