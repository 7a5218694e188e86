"""Adding a sink is one module plus one configuration entry: a toy sink, run for real.

The test copies the source tree, writes ``tasks/sinks/ledger.py`` (tests/toy/ledger_sink.py)
and adds one entry to ``SINKS`` in the copy's ``chromasync/core/sinks.py``, and nothing
else; then runs the whole pipeline from the copy with ``CHROMASYNC_SINKS=chroma,ledger``
(tests/toy/run_toy_sink.py). Provisioning makes the ledger's queue and dead-letter
queue, the poller routes to it, a worker of its own applies, verify finds and repairs.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from chromasync.core.config import ConfigError, Settings
from tests.servers import redis_url
from tests.toy import run_in_tree, tree_with_entry

#: The configuration entry, written as a developer would.
LEDGER_ENTRY = """    "ledger": SinkSpec(
        "ledger",
        {EntityType.RECEIPT: Watch(), EntityType.RECEIPT_LINE: Watch()},
        "line counts per receipt in Redis",
    ),
"""
SINKS_START = "SINKS: Final[dict[str, SinkSpec]] = {\n"


def _tree_with_ledger(tmp_path: Path) -> Path:
    tree = tree_with_entry(tmp_path, "chromasync/core/sinks.py", SINKS_START, LEDGER_ENTRY)
    shutil.copy(tree / "tests" / "toy" / "ledger_sink.py", tree / "tasks" / "sinks" / "ledger.py")
    return tree


def test_a_toy_sink_added_as_one_module_and_one_entry_runs_for_real(
    stack_env: dict[str, str], tmp_path: Path
) -> None:
    # Not a sink before the entry (this test's control).
    with pytest.raises(ConfigError, match="unknown sinks \\['ledger'\\]"):
        Settings.from_env({"CHROMASYNC_SINKS": "chroma,ledger"})
    tree = _tree_with_ledger(tmp_path)
    env = {**stack_env, "CHROMASYNC_SINKS": "chroma,ledger", "CHROMASYNC_LEDGER_URL": redis_url()}
    seen = run_in_tree(tree, "run_toy_sink.py", env, tmp_path / "logs")
    lines, words = stack_env.get("CHROMASYNC_COLLECTIONS", "lines,words").split(",")
    assert seen["targets"] == [lines, words, "ledger"]
    assert seen["queues"] == [True, True]  # provisioned from CHROMASYNC_SINKS alone
    assert seen["workers"] == sorted([lines, words, "ledger"])
    assert seen["after_remove"] == [2, 3] and seen["clean"] is True
    assert seen["drift"] == [["ledger", "differs"]]
    assert seen["repaired"] == [2, 3]
