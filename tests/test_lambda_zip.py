"""The Lambda package (make lambda-zip): the producer and its dependencies only, and it runs.

The zip is built once per session by deploy/lambda/build.py (pip's download and the
installed packages are cached under .chromasync/lambda/, so only the first build
on a machine needs PyPI), unpacked into an empty directory and the handler run
from it in ``python -I -S``: no site-packages, so whatever the handler imports
comes from the zip or the standard library.
"""

from __future__ import annotations

import base64
import json
import re
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import boto3
import pytest

from chromasync.core.config import Settings
from chromasync.core.contract import APPLY_TASK_NAME, ChangeBatch
from chromasync.core.keys import image_pk, word_sk
from producers.quarantine import QUARANTINE_SUFFIX
from tests.lambda_build import ROOT, SCRIPT, build_module, isolated
from tests.producing import IMAGE, Queues, decode_task, line_record, record

#: The zip is built by a process (pip on a first build): outside ``make test-fast``.
pytestmark = pytest.mark.slow

#: Modules a producer-only package must not hold (the worker, the demo, the operator side).
NOT_IN_THE_ZIP = ("chromadb", "tasks", "celeryconfig", "moto", "redis", "pycurl", "flower")


class Build:
    def __init__(self, path: Path, stdout: str) -> None:
        self.path = path
        self.stdout = stdout


def run_build(output: Path) -> Build:
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--output", str(output)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr
    return Build(output, done.stdout)


@pytest.fixture(scope="session")
def built(tmp_path_factory: pytest.TempPathFactory) -> Build:
    return run_build(tmp_path_factory.mktemp("lambda") / "chromasync-producer.zip")


def printed_bytes(stdout: str, label: str) -> int:
    found = re.search(rf"^\s*{label}\s+[\d.]+ MiB \(([\d,]+) bytes\)$", stdout, re.M)
    assert found, f"no {label} size in the build's output:\n{stdout}"
    return int(found.group(1).replace(",", ""))


def test_the_zip_holds_the_producer_and_its_dependencies_only(built: Build) -> None:
    build = build_module()
    with zipfile.ZipFile(built.path) as archive:
        infos = archive.infolist()
    names = [info.filename for info in infos]
    tops = {name.split("/")[0] for name in names}
    assert {"producers", "chromasync", "celery", "kombu", "boto3", "pydantic"} <= tops
    assert "producers/lambda_handler.py" in names
    assert "chromasync/core/contract.py" in names
    ours = [name for name in names if name.startswith("chromasync/")]
    assert all(name.startswith(build.SHARED_CORE) for name in ours), ours
    assert not tops & {*NOT_IN_THE_ZIP, *build.FORBIDDEN}
    assert not any("__pycache__" in name or name.endswith(".pyc") for name in names)
    services = {
        n.split("/")[2] for n in names if n.startswith("botocore/data/") and n.count("/") > 2
    }
    assert services == build.BOTOCORE_SERVICES
    # Reproducible: sorted, one timestamp and mode.
    assert names == sorted(names)
    assert {info.date_time for info in infos} == {build.ZIP_DATE}
    assert {info.external_attr >> 16 for info in infos} == {build.ZIP_MODE}


def test_the_build_prints_its_sizes_and_biggest_packages(built: Build) -> None:
    with zipfile.ZipFile(built.path) as archive:
        unzipped = sum(info.file_size for info in archive.infolist())
    assert printed_bytes(built.stdout, "unzipped") == unzipped
    assert printed_bytes(built.stdout, "zipped") == built.path.stat().st_size
    assert "biggest packages" in built.stdout and "pydantic-core" in built.stdout
    # Lambda's limit for a zip is 250 MB unpacked; this one is far below it.
    assert unzipped < 50 * 2**20


def test_a_second_build_is_the_same_bytes(built: Build, tmp_path: Path) -> None:
    again = run_build(tmp_path / "again.zip")
    assert again.path.read_bytes() == built.path.read_bytes()


#: The quarantine queue's retention as chromasync creates it (14 days): a queue made here
#: with other attributes would make chromasync's own CreateQueue of it fail.
QUARANTINE_RETENTION = str(14 * 24 * 3600)


def ensure_quarantine_queue(settings: Settings) -> None:
    """The quarantine queue, in case ``ensure_queues`` does not create it (yet): provisioning
    is being extended to make it; until then the producer made it on first use."""
    sqs = boto3.client("sqs", **settings.aws.client_kwargs())
    name = f"{settings.queue_prefix}{QUARANTINE_SUFFIX}"
    try:
        sqs.get_queue_url(QueueName=name)
    except sqs.exceptions.QueueDoesNotExist:
        sqs.create_queue(
            QueueName=name, Attributes={"MessageRetentionPeriod": QUARANTINE_RETENTION}
        )


def stream_event() -> dict[str, Any]:
    """Two line changes, a word change, a record of no entity of ours and a malformed one."""
    word = record(
        "MODIFY",
        image_pk(IMAGE),
        word_sk(1, 2, 3),
        4,
        new={"text": "13.00", "is_noise": False},
        old={"text": "12.00", "is_noise": False},
    )
    malformed = line_record("INSERT", 6, line=3)
    malformed["dynamodb"]["Keys"] = {}
    return {
        "Records": [
            line_record("INSERT", 1, line=1),
            line_record("MODIFY", 2, line=2),
            record("INSERT", "USER#1", "PROFILE", 3, new={"a": 1}),
            word,
            malformed,
        ]
    }


HANDLER = """
import importlib.util, json
for name in {not_in_zip!r}:
    assert importlib.util.find_spec(name) is None, name + " is importable"
from producers.lambda_handler import handler
event = json.loads(open("event.json").read())
print(json.dumps(handler(event, None)))
"""


def received(settings: Settings, collection: str) -> list[tuple[str, ChangeBatch]]:
    """The tasks on a collection's queue, read with boto3: (Celery task name, payload)."""
    sqs = boto3.client("sqs", **settings.aws.client_kwargs())
    url = sqs.get_queue_url(QueueName=settings.sqs_queue_name(collection))["QueueUrl"]
    messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1)
    tasks = []
    for message in messages.get("Messages", []):
        envelope = json.loads(base64.b64decode(message["Body"]))
        tasks.append((envelope["headers"]["task"], decode_task(message["Body"])))
    return tasks


def test_the_handler_runs_from_the_unpacked_zip_alone(
    built: Build, producer_env: dict[str, str], tmp_path: Path
) -> None:
    settings = Settings.from_env(producer_env)
    queues = Queues(settings)  # ensure_queues: each collection's queue and dead-letter queue
    ensure_quarantine_queue(settings)
    unpacked = tmp_path / "task"
    unpacked.mkdir()
    with zipfile.ZipFile(built.path) as archive:
        archive.extractall(unpacked)
    event = stream_event()
    (tmp_path / "event.json").write_text(json.dumps(event))

    done = isolated(
        HANDLER.format(not_in_zip=NOT_IN_THE_ZIP), [unpacked], producer_env, cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.splitlines()[-1]) == {"batchItemFailures": []}

    batches = {}
    for collection in ("lines", "words"):
        ((name, batch),) = received(settings, collection)
        assert name == APPLY_TASK_NAME
        assert batch.collection == collection
        batches[collection] = batch
    lines, words = batches["lines"].changes, batches["words"].changes
    assert [(c.event_name, c.sequence_int) for c in lines] == [("INSERT", 1), ("MODIFY", 2)]
    assert lines[0].changes["text"] == {"old": None, "new": "line 1 v1"}
    assert [(c.entity_type, c.event_name, c.sequence_int) for c in words] == [
        ("RECEIPT_WORD", "MODIFY", 4)
    ]
    assert words[0].changes["text"] == {"old": "12.00", "new": "13.00"}
    (kept,) = queues.quarantined()
    assert kept["record"] == event["Records"][4]
    assert kept["source"] == "lambda"
