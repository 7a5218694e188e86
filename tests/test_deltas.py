"""COMPACTION_RUN delta merges against a real moto server (S3, DynamoDB) and real Chroma dirs.

Each test builds a real delta (a Chroma PersistentClient directory with
explicit embeddings), puts it in moto's S3 as ``delta.tar.gz`` or as files,
puts the run item in a moto DynamoDB table and merges into an embedded
Chroma target under ``tmp_path``.
"""

from __future__ import annotations

import io
import tarfile
import uuid
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import boto3
import numpy as np
import pytest

from chromasync.core.config import AwsSettings, ConfigError
from chromasync.core.contract import Change, ChangeBatch, ChangeKeys
from chromasync.core.entities import CollectionRole, EntityType
from chromasync.core.keys import image_pk, line_embedding_id, line_sk
from chromasync.provision import ensure_lock_table
from chromasync.seed import vector
from tasks.chroma.persistent import open_directory
from tasks.chroma.targets.embedded import EmbeddedChromaTarget
from tasks.config import WorkerSettings
from tasks.deltas.errors import InvalidDelta, UnsafeDelta
from tasks.deltas.location import DeltaLocation, parse_location
from tasks.deltas.merger import S3DeltaMerger
from tasks.deltas.runs import run_sk
from tasks.errors import DeltaNotReady, is_transient
from tasks.lease import LeaseLost
from tasks.runtime import WorkerRuntime
from tests.servers import MotoServer

#: Bucket the deltas are uploaded to.
BUCKET = "receipt-deltas"
IMAGE = "3f52804b-2fad-4e00-92c8-b593da3a8ed3"
RECEIPT = 1
RUN = "run-0001"
#: Small on purpose: 20 embeddings need three upserts.
BATCH = 7
#: Embeddings in each test delta.
COUNT = 20

Record = tuple[str, list[float], dict[str, Any], str | None]


@pytest.fixture
def aws(moto: MotoServer) -> AwsSettings:
    return AwsSettings(
        endpoint_url=moto.url,
        region="us-east-1",
        access_key_id="testing",
        secret_access_key="testing",
    )


@pytest.fixture
def s3(aws: AwsSettings) -> Any:
    client = boto3.client("s3", **aws.client_kwargs())
    client.create_bucket(Bucket=BUCKET)
    return client


@pytest.fixture
def dynamodb(aws: AwsSettings) -> Any:
    return boto3.client("dynamodb", **aws.client_kwargs())


@pytest.fixture
def table(dynamodb: Any) -> str:
    name = f"receipts-{uuid.uuid4().hex[:8]}"
    dynamodb.create_table(
        TableName=name,
        KeySchema=[
            {"AttributeName": "PK", "KeyType": "HASH"},
            {"AttributeName": "SK", "KeyType": "RANGE"},
        ],
        AttributeDefinitions=[
            {"AttributeName": "PK", "AttributeType": "S"},
            {"AttributeName": "SK", "AttributeType": "S"},
        ],
        BillingMode="PAY_PER_REQUEST",
    )
    return name


@pytest.fixture
def target(tmp_path: Path) -> Iterator[EmbeddedChromaTarget]:
    made = EmbeddedChromaTarget(tmp_path / "target")
    yield made
    made.close()


@pytest.fixture
def work_dir(tmp_path: Path) -> Path:
    return tmp_path / "work"


def records(count: int = COUNT) -> list[Record]:
    out: list[Record] = []
    for lid in range(1, count + 1):
        eid = line_embedding_id(IMAGE, RECEIPT, lid)
        metadata = {"image_id": IMAGE, "receipt_id": RECEIPT, "line_id": lid, "text": f"l{lid}"}
        out.append((eid, vector(eid), metadata, f"line {lid}" if lid % 2 else None))
    return out


def build_delta(directory: Path, collection: str, rows: list[Record]) -> Path:
    """A real Chroma PersistentClient directory holding ``rows`` (closed, ready to ship)."""
    client = open_directory(directory)
    col = client.get_or_create_collection(name=collection, embedding_function=None)
    col.add(
        ids=[r[0] for r in rows],
        embeddings=[r[1] for r in rows],
        metadatas=[r[2] for r in rows],
        documents=[r[3] for r in rows],
    )
    client.close()
    return directory


def tar_delta(directory: Path, top: str = ".", extra: list[tarfile.TarInfo] | None = None) -> bytes:
    """``delta.tar.gz`` bytes: the directory under ``top``, then any extra (hostile) members."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        archive.add(directory, arcname=top)
        for member in extra or []:
            payload = b"evil" if member.isfile() else b""
            member.size = len(payload)
            archive.addfile(member, io.BytesIO(payload) if payload else None)
    return buffer.getvalue()


def upload_files(s3: Any, directory: Path, prefix: str) -> int:
    uploaded = 0
    for path in sorted(directory.rglob("*")):
        if path.is_file():
            s3.upload_file(str(path), BUCKET, prefix + path.relative_to(directory).as_posix())
            uploaded += 1
    return uploaded


def put_run(dynamodb: Any, table: str, **attributes: str) -> None:
    item = {"PK": {"S": image_pk(IMAGE)}, "SK": {"S": run_sk(RECEIPT, RUN)}}
    item.update({k: {"S": v} for k, v in attributes.items()})
    dynamodb.put_item(TableName=table, Item=item)


def put_lines(dynamodb: Any, table: str, line_ids: range | list[int]) -> None:
    """The receipt's line items, as the embedding job writes them before its run."""
    for lid in line_ids:
        item = {
            "PK": {"S": image_pk(IMAGE)},
            "SK": {"S": line_sk(RECEIPT, lid)},
            "TYPE": {"S": "RECEIPT_LINE"},
            "text": {"S": f"l{lid}"},
        }
        dynamodb.put_item(TableName=table, Item=item)


def get_run(dynamodb: Any, table: str) -> dict[str, Any] | None:
    key = {"PK": {"S": image_pk(IMAGE)}, "SK": {"S": run_sk(RECEIPT, RUN)}}
    item: dict[str, Any] | None = dynamodb.get_item(
        TableName=table, Key=key, ConsistentRead=True
    ).get("Item")
    return item


def run_change() -> Change:
    """The INSERT change as the producer sends it; no new_image, so the merger must re-read."""
    return Change(
        entity_type=EntityType.COMPACTION_RUN,
        event_name="INSERT",
        keys=ChangeKeys(image_id=IMAGE, receipt_id=RECEIPT, run_id=RUN),
        sequence_number="100",
        event_id="event-1",
    )


def roles(name: str) -> CollectionRole:
    return CollectionRole(name)


class Lease:
    """A check_lease that records the target's size at every call and can fail on call N."""

    def __init__(self, collection: Any, fail_on: int | None = None) -> None:
        self.collection = collection
        self.fail_on = fail_on
        self.seen: list[int] = []

    def __call__(self) -> None:
        self.seen.append(self.collection.count())
        if self.fail_on is not None and len(self.seen) >= self.fail_on:
            raise LeaseLost("lease taken over (test)")


def merger(aws: AwsSettings, table: str, work_dir: Path) -> S3DeltaMerger:
    return S3DeltaMerger(aws, table, roles, max_batch_size=BATCH, work_dir=work_dir)


def assert_arrived(collection: Any, rows: list[Record]) -> None:
    got = collection.get(ids=[r[0] for r in rows], include=["embeddings", "metadatas", "documents"])
    by_id = {
        i: (e, m, d)
        for i, e, m, d in zip(
            got["ids"], got["embeddings"], got["metadatas"], got["documents"], strict=True
        )
    }
    assert sorted(by_id) == sorted(r[0] for r in rows)
    for eid, vec, metadata, document in rows:
        embedding, got_metadata, got_document = by_id[eid]
        assert np.allclose(embedding, vec, rtol=1e-6)
        assert got_metadata == metadata
        assert got_document == document


def test_tarball_delta_is_upserted_in_chunks_and_run_marked_for_its_role(
    aws: AwsSettings, s3: Any, dynamodb: Any, table: str, target: Any, tmp_path: Path
) -> None:
    rows = records()
    delta = build_delta(tmp_path / "delta", "lines", rows)
    s3.put_object(Bucket=BUCKET, Key="runs/r1/lines/delta.tar.gz", Body=tar_delta(delta))
    put_run(
        dynamodb,
        table,
        lines_delta_prefix=f"s3://{BUCKET}/runs/r1/lines/",
        words_delta_prefix=f"s3://{BUCKET}/runs/r1/words/",
    )
    lines = target.collection("lines")
    lease = Lease(lines)

    merged = merger(aws, table, tmp_path / "work")(lines, run_change(), lease)

    assert merged == COUNT
    assert_arrived(lines, rows)
    # Sizes seen before each write: three upserts of at most 7, then the run mark.
    assert lease.seen == [0, 7, 14, 20]
    run = get_run(dynamodb, table)
    assert run is not None
    assert run["lines_merge_status"] == {"S": "COMPLETED"}
    assert run["lines_merged_count"] == {"N": str(COUNT)}
    assert datetime.fromisoformat(run["lines_merged_at"]["S"]).tzinfo is not None
    assert not any(name.startswith("words_merge") for name in run)
    assert list((tmp_path / "work").iterdir()) == []  # temp dir cleaned up


def test_directory_form_under_a_bare_prefix_resolved_against_the_delta_bucket(
    aws: AwsSettings, s3: Any, dynamodb: Any, table: str, target: Any, tmp_path: Path
) -> None:
    rows = records()
    # The delta's only collection has another name: it is still the one merged.
    delta = build_delta(tmp_path / "delta", "run-output", rows)
    assert upload_files(s3, delta, "runs/r1/words/") >= 2
    # A neighbour whose key shares the prefix's text must not be picked up.
    other = build_delta(tmp_path / "other", "words", records(3))
    upload_files(s3, other, "runs/r1/words-old/")
    put_run(dynamodb, table, words_delta_prefix="runs/r1/words")
    settings = WorkerSettings.from_env(
        {
            "AWS_ENDPOINT_URL": str(aws.endpoint_url),
            "CHROMASYNC_TABLE": table,
            "CHROMASYNC_DELTA_BUCKET": BUCKET,
        }
    )
    merge = S3DeltaMerger.from_settings(settings, max_batch_size=BATCH, work_dir=tmp_path / "w")
    words = target.collection("words")

    assert merge(words, run_change(), Lease(words)) == COUNT

    assert_arrived(words, rows)
    assert words.count() == COUNT
    run = get_run(dynamodb, table)
    assert run is not None
    assert run["words_merge_status"] == {"S": "COMPLETED"}
    assert "lines_merge_status" not in run


def test_redelivery_after_merge_and_deleted_run_are_no_ops(
    aws: AwsSettings, s3: Any, dynamodb: Any, table: str, target: Any, tmp_path: Path
) -> None:
    rows = records()
    delta = build_delta(tmp_path / "delta", "lines", rows)
    s3.put_object(Bucket=BUCKET, Key="runs/r1/lines/delta.tar.gz", Body=tar_delta(delta))
    put_run(dynamodb, table, lines_delta_prefix=f"s3://{BUCKET}/runs/r1/lines/")
    lines = target.collection("lines")
    merge = merger(aws, table, tmp_path / "work")
    assert merge(lines, run_change(), Lease(lines)) == COUNT
    lines.delete(ids=[rows[0][0]])  # a later change removed one line

    again = Lease(lines)
    assert merge(lines, run_change(), again) == 0
    assert again.seen == []  # no write was even attempted
    assert lines.count() == COUNT - 1  # the removed line did not come back

    dynamodb.delete_item(
        TableName=table, Key={"PK": {"S": image_pk(IMAGE)}, "SK": {"S": run_sk(RECEIPT, RUN)}}
    )
    assert merge(lines, run_change(), again) == 0
    assert lines.count() == COUNT - 1


def _member(name: str, kind: bytes = tarfile.REGTYPE, linkname: str = "") -> tarfile.TarInfo:
    member = tarfile.TarInfo(name)
    member.type = kind
    member.linkname = linkname
    return member


@pytest.mark.parametrize(
    ("kind", "message"),
    [
        ("dotdot", "containing '..'"),
        ("absolute", "absolute"),
        ("symlink", "symbolic link"),
        ("hardlink", "hard link"),
        ("device", "device"),
    ],
)
def test_hostile_tarball_is_refused_and_nothing_is_written(
    kind: str,
    message: str,
    aws: AwsSettings,
    s3: Any,
    dynamodb: Any,
    table: str,
    target: Any,
    tmp_path: Path,
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    work = tmp_path / "work"
    # work/<temp>/delta/ is where members land: three levels up is tmp_path.
    evil = {
        "dotdot": _member("../../../outside/evil"),
        "absolute": _member(str(outside / "evil")),
        "symlink": _member("escape", tarfile.SYMTYPE, str(outside)),
        "hardlink": _member("escape", tarfile.LNKTYPE, str(outside / "passwd")),
        "device": _member("null", tarfile.CHRTYPE),
    }[kind]
    delta = build_delta(tmp_path / "delta", "lines", records())
    body = tar_delta(delta, extra=[evil, _member("escape/evil")] if kind == "symlink" else [evil])
    s3.put_object(Bucket=BUCKET, Key="runs/r1/lines/delta.tar.gz", Body=body)
    put_run(dynamodb, table, lines_delta_prefix=f"s3://{BUCKET}/runs/r1/lines/")
    lines = target.collection("lines")
    lease = Lease(lines)

    with pytest.raises(UnsafeDelta, match=message) as refused:
        merger(aws, table, work)(lines, run_change(), lease)

    assert evil.name in str(refused.value)
    assert not is_transient(refused.value)  # permanent: straight to the dead-letter queue
    assert list(outside.iterdir()) == []
    assert not (tmp_path / "evil").exists()
    assert list(work.iterdir()) == []
    assert lease.seen == []
    assert lines.count() == 0
    run = get_run(dynamodb, table)
    assert run is not None and "lines_merge_status" not in run


def test_object_key_escaping_the_prefix_is_refused(
    aws: AwsSettings, s3: Any, dynamodb: Any, table: str, target: Any, tmp_path: Path
) -> None:
    delta = build_delta(tmp_path / "delta", "lines", records())
    upload_files(s3, delta, "runs/r1/lines/")
    s3.put_object(Bucket=BUCKET, Key="runs/r1/lines/../../../../outside-evil", Body=b"evil")
    put_run(dynamodb, table, lines_delta_prefix=f"s3://{BUCKET}/runs/r1/lines/")
    lines = target.collection("lines")

    with pytest.raises(UnsafeDelta, match=r"outside-evil"):
        merger(aws, table, tmp_path / "work")(lines, run_change(), Lease(lines))

    assert not (tmp_path / "outside-evil").exists()
    assert lines.count() == 0


def test_missing_delta_is_a_transient_error(
    aws: AwsSettings, s3: Any, dynamodb: Any, table: str, target: Any, tmp_path: Path
) -> None:
    put_run(dynamodb, table, lines_delta_prefix=f"s3://{BUCKET}/runs/not-yet/lines/")
    lines = target.collection("lines")
    lease = Lease(lines)

    with pytest.raises(DeltaNotReady, match="runs/not-yet/lines/") as raised:
        merger(aws, table, tmp_path / "work")(lines, run_change(), lease)

    assert is_transient(raised.value)
    assert lease.seen == []
    run = get_run(dynamodb, table)
    assert run is not None and "lines_merge_status" not in run


def test_lost_lease_stops_the_merge_before_the_next_upsert(
    aws: AwsSettings, s3: Any, dynamodb: Any, table: str, target: Any, tmp_path: Path
) -> None:
    delta = build_delta(tmp_path / "delta", "lines", records())
    # The tarball named directly, with the directory inside one top folder.
    s3.put_object(Bucket=BUCKET, Key="runs/r1/lines.tar.gz", Body=tar_delta(delta, top="out"))
    put_run(dynamodb, table, lines_delta_prefix=f"s3://{BUCKET}/runs/r1/lines.tar.gz")
    lines = target.collection("lines")
    lease = Lease(lines, fail_on=2)

    with pytest.raises(LeaseLost):
        merger(aws, table, tmp_path / "work")(lines, run_change(), lease)

    assert lease.seen == [0, BATCH]  # one upsert, then the lost lease
    assert lines.count() == BATCH  # nothing written after the raise
    run = get_run(dynamodb, table)
    assert run is not None and "lines_merge_status" not in run
    assert list((tmp_path / "work").iterdir()) == []


def stage_run(
    s3: Any, dynamodb: Any, table: str, tmp_path: Path, line_ids: range | list[int]
) -> list[Record]:
    """Run r1 as an embedding job leaves it: its delta of every line in S3, the
    lines ``line_ids`` in the table, then the run item. Returns the delta's rows."""
    rows = records()
    delta = build_delta(tmp_path / "delta", "lines", rows)
    s3.put_object(Bucket=BUCKET, Key="runs/r1/lines/delta.tar.gz", Body=tar_delta(delta))
    put_lines(dynamodb, table, line_ids)
    put_run(dynamodb, table, lines_delta_prefix="runs/r1/lines/")
    return rows


def worker_runtime(aws: AwsSettings, table: str, tmp_path: Path) -> WorkerRuntime:
    """The runtime a worker builds, on this test's table, Chroma directory and bucket."""
    settings = WorkerSettings.from_env(
        {
            "AWS_ENDPOINT_URL": str(aws.endpoint_url),
            "CHROMASYNC_TABLE": table,
            "CHROMASYNC_LOCK_URL": f"dynamodb://{table}-locks",
            "CHROMASYNC_CHROMA_DIR": str(tmp_path / "chroma"),
            "CHROMASYNC_DELTA_BUCKET": BUCKET,
        }
    )
    ensure_lock_table(aws, f"{table}-locks")
    return WorkerRuntime(settings, merge_delta=S3DeltaMerger.from_settings(settings))


@pytest.mark.parametrize(
    "deleted", [(), (3,)], ids=["every line", "a line deleted before the merge"]
)
def test_worker_runtime_merges_the_embeddings_of_the_lines_the_table_holds(
    deleted: tuple[int, ...], aws: AwsSettings, s3: Any, dynamodb: Any, table: str, tmp_path: Path
) -> None:
    """The merger as the worker wires it: runtime → lease → plan → writer → merger.

    The merge keeps to what the table holds when it runs: a late or retried merge of
    a delta must not bring back the embedding of a line deleted meanwhile."""
    kept = [lid for lid in range(1, COUNT + 1) if lid not in deleted]
    rows = stage_run(s3, dynamodb, table, tmp_path, kept)
    runtime = worker_runtime(aws, table, tmp_path)
    try:
        outcome = runtime.apply_batch(ChangeBatch(collection="lines", changes=[run_change()]))
        assert outcome.failed == {}
        assert outcome.result.merged == len(kept)
        lines = runtime.target.collection("lines")
        assert_arrived(lines, [row for row in rows if row[2]["line_id"] in kept])
        assert lines.count() == len(kept)  # nothing of a deleted line came back
        again = runtime.apply_batch(ChangeBatch(collection="lines", changes=[run_change()]))
        assert again.result.merged == 0
    finally:
        runtime.close()
    run = get_run(dynamodb, table)
    assert run is not None and run["lines_merge_status"] == {"S": "COMPLETED"}


def test_a_run_whose_delta_is_not_uploaded_yet_waits_alone(
    aws: AwsSettings, s3: Any, dynamodb: Any, table: str, tmp_path: Path
) -> None:
    """A missing delta sets its run aside to wait; the rest of its batch is applied."""
    stage_run(s3, dynamodb, table, tmp_path, range(1, COUNT + 1))
    late = Change(
        entity_type=EntityType.COMPACTION_RUN,
        event_name="INSERT",
        keys=ChangeKeys(image_id=IMAGE, receipt_id=RECEIPT, run_id="run-late"),
        sequence_number="2",
        event_id="run-late-insert",
    )
    dynamodb.put_item(
        TableName=table,
        Item={
            "PK": {"S": image_pk(IMAGE)},
            "SK": {"S": run_sk(RECEIPT, "run-late")},
            "lines_delta_prefix": {"S": "runs/not-yet/lines/"},
        },
    )
    edit = Change(
        entity_type=EntityType.RECEIPT_LINE,
        event_name="MODIFY",
        keys=ChangeKeys(image_id=IMAGE, receipt_id=RECEIPT, line_id=2),
        sequence_number="3",
        event_id="line-2-edit",
    )
    runtime = worker_runtime(aws, table, tmp_path)
    try:
        first = runtime.apply_batch(ChangeBatch(collection="lines", changes=[run_change()]))
        assert first.result.merged == COUNT
        dynamodb.update_item(
            TableName=table,
            Key={"PK": {"S": image_pk(IMAGE)}, "SK": {"S": line_sk(RECEIPT, 2)}},
            UpdateExpression="SET #t = :t",
            ExpressionAttributeNames={"#t": "text"},
            ExpressionAttributeValues={":t": {"S": "edited"}},
        )
        outcome = runtime.apply_batch(ChangeBatch(collection="lines", changes=[late, edit]))
        assert outcome.waiting == {0} and outcome.failed == {}
        assert outcome.result.deltas_not_ready == {0}
        lines = runtime.target.collection("lines")
        got = lines.get(ids=[line_embedding_id(IMAGE, RECEIPT, 2)], include=["metadatas"])
        assert got["metadatas"][0]["text"] == "edited"
    finally:
        runtime.close()


@pytest.mark.parametrize(
    ("raw", "default_bucket", "expected"),
    [
        ("s3://b/runs/1", None, DeltaLocation("b", "runs/1/")),
        ("runs/1/", "b", DeltaLocation("b", "runs/1/")),
        ("s3://b/runs/1/lines.tar.gz", "other", DeltaLocation("b", "runs/1/lines.tar.gz")),
    ],
)
def test_delta_prefix_forms(raw: str, default_bucket: str | None, expected: DeltaLocation) -> None:
    location = parse_location(raw, default_bucket)
    assert location == expected
    assert location.is_tarball is raw.endswith(".tar.gz")


@pytest.mark.parametrize(
    ("raw", "default_bucket", "message"),
    [
        ("runs/1/", None, "CHROMASYNC_DELTA_BUCKET"),
        ("s3://b", "b", "non-empty key prefix"),
        ("s3://b/", "b", "non-empty key prefix"),
        ("https://b/runs/1/", "b", "only s3://"),
    ],
)
def test_delta_prefix_that_names_no_delta_is_refused(
    raw: str, default_bucket: str | None, message: str
) -> None:
    with pytest.raises(InvalidDelta, match=message):
        parse_location(raw, default_bucket)


def test_delta_bucket_setting_is_a_bare_bucket_name() -> None:
    with pytest.raises(ConfigError, match="CHROMASYNC_DELTA_BUCKET"):
        WorkerSettings.from_env({"CHROMASYNC_DELTA_BUCKET": "s3://b"})
    assert WorkerSettings.from_env({}).delta_bucket is None
