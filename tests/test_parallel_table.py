"""The parallel-table benchmark: stream records made from writes, and a smoke run.

The records are checked against moto (it answers ``ReturnValues=ALL_OLD`` as DynamoDB
does) and through the producer's own decoder; the smoke run needs dynalite and is
skipped where it is not installed (tests reach no registry). No figure is judged.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import boto3
import pytest

from benchmarks import table_standin
from benchmarks.stream_feed import RecordingWriter, batches
from benchmarks.workload import TableOp
from chromasync.core.config import Settings
from chromasync.local import MotoServer, redis_answers
from chromasync.provision import ensure_table
from producers.decoding import decode_record
from tests.commands import run_module

REDIS_URL = os.environ.get("CHROMASYNC_TEST_REDIS_URL", "redis://127.0.0.1:6379/10")
KEY = {"PK": "IMAGE#a", "SK": "RECEIPT#00001#LINE#00001"}


def _put(text: str) -> TableOp:
    item = {**KEY, "TYPE": "RECEIPT_LINE", "text": text, "confidence": Decimal("0.9")}
    return TableOp("line_edit", item, None, ())


def test_each_write_becomes_the_record_the_stream_would_send(moto: MotoServer) -> None:
    settings = Settings.from_env({**moto.client_env(), "CHROMASYNC_TABLE": "fed"})
    client = boto3.client("dynamodb", **settings.aws.client_kwargs())
    ensure_table(settings, client=client)
    writer = RecordingWriter(client, "fed", "arn:aws:dynamodb:us-east-1:0:table/fed/stream/x")
    deletion = TableOp("delete_word", None, dict(KEY), ())
    records = writer.write([_put("one"), _put("two"), deletion, deletion])
    # The second delete finds nothing: DynamoDB streams no record for it.
    assert [r["eventName"] for r in records] == ["INSERT", "MODIFY", "REMOVE"]
    decoded = [decode_record(r) for r in records]
    assert [d.keys for d in decoded] == [KEY] * 3
    sequences = [int(d.sequence_number) for d in decoded]
    assert sequences == sorted(set(sequences))
    images = [(d.old_image or {}, d.new_image or {}) for d in decoded]
    assert decoded[0].raw_old_image is None and images[0][1]["text"] == "one"
    assert (images[1][0]["text"], images[1][1]["text"]) == ("one", "two")
    assert decoded[2].raw_new_image is None and images[2][0]["text"] == "two"
    assert all(r["dynamodb"]["StreamViewType"] == "NEW_AND_OLD_IMAGES" for r in records)


def test_batches_are_of_the_lambda_batch_size() -> None:
    assert [len(b) for b in batches(list(range(2500)))] == [1000, 1000, 500]


@pytest.mark.slow
@pytest.mark.timeout(180)
@pytest.mark.skipif(
    shutil.which("node") is None or not table_standin.installed(),
    reason="dynalite is not installed (benchmarks.table_standin.install())",
)
def test_smoke_run_writes_its_report(tmp_path: Path) -> None:
    if not redis_answers(REDIS_URL):
        pytest.fail(f"redis-server must answer at {REDIS_URL}")
    out = tmp_path / "report.json"
    done = run_module(
        "chromasync.cli", "bench", "--table", "dynalite", "--smoke",
        "--workdir", str(tmp_path / "work"), "--json", str(out), "--redis-url", REDIS_URL,
    )  # fmt: skip
    report = json.loads(out.read_text())
    assert report["sink"]["embeddings_per_second"] > 0
    assert report["command"].startswith("chromasync bench --table dynalite")
    sections = report["dynalite"]
    for name in ("chromasync_single", "chromasync_mix", "per_message"):
        assert sections[name]["changes"] > 0 and sections[name]["seconds"] > 0
        assert {"dynalite", "moto", "driver"} <= set(sections[name]["cpu_seconds"])
    assert set(sections["ratios"]) == {
        "single_vs_per_message",
        "single_vs_sink",
        "mix_vs_sink",
        "single_worker_cpu_vs_chroma",
        "mix_worker_cpu_vs_chroma",
    }
    assert sections["ratios"]["single_worker_cpu_vs_chroma"] > 0
    assert set(report["moto"]["ratios"]) == set(sections["ratios"])
    assert "single worker CPU per embedding" in done.stdout


def test_options_of_the_moto_run_are_refused_on_dynalite() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "chromasync.cli", "bench", "--table", "dynalite", "--lag-env",
         "CHROMASYNC_POLLING_INTERVAL=0.1", "--redis-url", REDIS_URL],
        capture_output=True,
        text=True,
        timeout=60,
    )  # fmt: skip
    assert done.returncode != 0
    assert "--lag-env applies to the moto run only" in done.stderr + done.stdout


@pytest.mark.slow
@pytest.mark.timeout(180)
@pytest.mark.skipif(
    shutil.which("node") is None or not table_standin.installed(),
    reason="dynalite is not installed (benchmarks.table_standin.install())",
)
def test_the_apply_breakdown_names_every_stage() -> None:
    if not redis_answers(REDIS_URL):
        pytest.fail(f"redis-server must answer at {REDIS_URL}")
    done = run_module(
        "benchmarks.apply_cpu", "--receipts", "6", "--changes", "30", "--batch", "10",
        "--repeats", "1", "--redis-url", REDIS_URL,
    )  # fmt: skip
    lines = done.stdout.splitlines()
    assert "single-embedding changes, batches of 10" in lines[0]
    figures = {}
    for line in lines[1:]:
        stage, micros, ratio = re.match(r"\s+(\S+(?: \S+)?)\s+([\d.]+)\s+([\d.]+) ×", line).groups()
        figures[stage] = (float(micros), float(ratio))
    assert list(figures) == [
        "read",
        "plan",
        "chroma get",
        "chroma update",
        "read+plan+get",
        "all four",
    ]
    # Work was measured: the changes were read and written.
    assert figures["read"][0] > 0 and figures["chroma update"][0] > 0
