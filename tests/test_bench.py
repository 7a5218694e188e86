"""``chromasync bench --smoke``: every section runs and lands in the JSON (no figure is judged).

The smoke profile is tiny (8 receipts, a few dozen changes per section), so its
figures mean nothing; this only proves the benchmark machinery works end to end:
moto, Redis, Chroma, both kinds of workers, the poller process, the report.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from benchmarks.report import SECTIONS
from chromasync.local import redis_answers
from tests.commands import run_module

#: The benchmark's own Redis db (the tests flush 15 and use 14).
BENCH_REDIS_URL = os.environ.get("CHROMASYNC_BENCH_REDIS_URL", "redis://127.0.0.1:6379/13")


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_smoke_run_writes_every_section(tmp_path: Path) -> None:
    if not redis_answers(BENCH_REDIS_URL):
        pytest.fail(f"redis-server must answer at {BENCH_REDIS_URL} (make test starts it)")
    out = tmp_path / "bench.json"
    chart = tmp_path / "bench.png"
    done = run_module(
        "chromasync.cli", "bench", "--smoke",
        "--workdir", str(tmp_path / "work"), "--json", str(out), "--chart", str(chart),
        "--redis-url", BENCH_REDIS_URL, "--profile", str(tmp_path / "profiles"),
    )  # fmt: skip
    report = json.loads(out.read_text())
    for section in SECTIONS:
        assert report.get(section), f"section {section!r} is missing or empty"
    assert report["profile"] == "smoke"
    assert [lag["offered_rate"] for lag in report["lag"]] == [50, 200]
    for name in ("chromasync_single", "chromasync_mix", "per_message"):
        assert report[name]["changes"] > 0 and report[name]["seconds"] > 0
    assert len(report["targets"]) == 7
    assert all(isinstance(t["met"], bool) for t in report["targets"])
    # CPU seconds of every process in every section; worker CPU per embedding against
    # Chroma's own (issue 17).
    for name in ("chromasync_single", "chromasync_mix", "per_message"):
        seconds = report[name]["cpu_seconds"]
        assert {"moto", "poller", "driver"} <= set(seconds), seconds
        assert sum(1 for label in seconds if label.startswith("worker")) == 2, seconds
        assert report[name]["worker_cpu_seconds"] > 0
        assert report[name]["worker_cpu_per_embedding"] > 0
    for lag in report["lag"]:
        assert {"moto", "driver"} <= set(lag["cpu_seconds"])
    assert set(report["sink"]["section_cpu_seconds"]) == {"moto", "driver"}
    assert report["sink"]["chroma_cpu_per_embedding"] > 0
    assert set(report["producer_cpu"]["cpu_seconds"]) == {"moto", "driver"}
    assert report["ratios"]["single_worker_cpu_vs_chroma"] > 0
    assert report["ratios"]["mix_worker_cpu_vs_chroma"] > 0
    assert "CPU seconds per process" in done.stdout
    assert "CPU per embedding" in done.stdout
    assert "ratios and targets" in done.stdout
    # --profile: each chromasync worker's main process and pool child left a cProfile file.
    profiles = sorted(p.name for p in (tmp_path / "profiles").glob("*.prof"))
    assert len(profiles) >= 4 and {p.rsplit("-", 2)[1] for p in profiles} == {"main", "child"}
    assert "per record, each step alone: decode" in done.stdout
    # The AWS cost model (issue 17): every kind through chromasync, the per-message
    # design's kinds through it too, requests counted by moto, priced and printed.
    cost = report["cost"]
    kinds = {(k["kind"], k["design"]) for k in cost["kinds"]}
    assert {("label", "chromasync"), ("merge", "chromasync"), ("label", "per-message")} <= kinds
    for k in cost["kinds"]:
        assert k["usage"]["sqs_requests"] > 0 and k["dollars_per_million_changes"]["total"] > 0
    assert cost["prices"]["date"] and cost["lambda"]["batch_size"] > 0
    assert "AWS cost per million changes" in done.stdout
    assert "| label | chromasync |" in done.stdout
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        assert "matplotlib is missing" in done.stdout
    else:
        assert chart.stat().st_size > 0


def test_the_producer_comparison_runs_without_servers() -> None:
    """``python -m benchmarks.producer_cpu``: MODIFY records built in-process, both loops."""
    from benchmarks.producer_cpu import STAGES, measure_producer, modify_records
    from chromasync.core.config import Settings

    records = modify_records(2)
    assert {r["eventName"] for r in records} == {"MODIFY"}
    result = measure_producer(Settings.from_env({}), records, repeats=1)
    # Every record is one of ours with a monitored change: each becomes one change.
    assert result.changes == result.records >= 10_000
    assert result.bare_seconds > 0 and result.producer_seconds > 0
    # Each step timed alone; detect is reported net of the validation it includes.
    assert list(result.stages) == list(STAGES)
    assert all(result.stages[name] > 0 for name in STAGES if name != "detect")
    assert result.stages["detect"] >= 0
