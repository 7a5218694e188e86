"""Snapshots against moto's S3, the real lock stores and real Chroma directories.

Publish while another thread keeps applying batches (the snapshot is the
collection at one instant), restore and query, promotion refused when the
lease is stolen at the lock store, uploads that fail on the network or arrive
truncated, retention, corrupt archives refused, the CLI, and a real worker that
restores before consuming while Celery beat has it publish periodically.
"""

from __future__ import annotations

import contextlib
import io
import socket
import subprocess
import sys
import tarfile
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from decimal import Decimal
from pathlib import Path
from typing import Any

import boto3
import numpy as np
import pytest
import redis

from chromasync.core.celery_settings import celery_settings
from chromasync.core.config import AwsSettings
from chromasync.core.contract import SNAPSHOT_TASK_NAME
from chromasync.core.keys import image_pk, receipt_sk
from chromasync.local import wait_for
from chromasync.provision import ensure_lock_table
from chromasync.seed import ReceiptSpec, demo_receipts, merchant_fields, vector
from chromasync.workers import WorkerProcess
from tasks.chroma.targets.embedded import EmbeddedChromaTarget
from tasks.config import WorkerSettings
from tasks.lease import lock_name
from tasks.locks import lock_backend_from_url
from tasks.locks.backends.redis import lock_key
from tasks.runtime import WorkerRuntime
from tasks.snapshots import (
    CorruptSnapshot,
    DirectoryNotEmpty,
    PromotionRefused,
    PublishHooks,
    PublishResult,
    SnapshotPublisher,
    SnapshotStore,
    UploadFailed,
    is_empty,
    parse_version,
    restore_snapshot,
    version_id,
)
from tasks.snapshots.layout import archive_key, manifest_key, pointer_key
from tests.stack import Stack
from tests.test_worker_apply import batch, make_change

#: Receipts seeded in every test: 6 x 3 lines x 4 words = 72 word embeddings.
RECEIPTS = 6
LINES = 3
WORDS_PER_LINE = 4
#: Ids per Chroma write in the consistency test, so one batch takes ~15 write calls.
SMALL_CHUNK = 5


def edition_of(metadata: dict[str, Any]) -> int:
    """The merchant edition an embedding carries (``place-{index}-{edition}``)."""
    return int(str(metadata["place_id"]).rsplit("-", 1)[1])


@pytest.fixture
def env(stack_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The stack's environment with collection and bucket names of this test alone.

    The lock is named after the collection, so unique names keep other test
    sessions that share Redis db 15 out of this test's locks.
    """
    suffix = uuid.uuid4().hex[:6]
    extra = {
        "CHROMASYNC_COLLECTIONS": f"lines{suffix},words{suffix}",
        "CHROMASYNC_SNAPSHOT_BUCKET": f"snapshots-{suffix}",
        "CHROMASYNC_LOCK_WAIT": "20",
    }
    for key, value in extra.items():
        monkeypatch.setenv(key, value)
    stack_env.update(extra)
    return stack_env


@dataclass
class System:
    stack: Stack
    settings: WorkerSettings
    store: SnapshotStore
    receipts: list[ReceiptSpec]
    work: Path
    backends: list[Any] = field(default_factory=list)

    @property
    def words(self) -> str:
        return self.stack.words

    def publisher(
        self, settings: WorkerSettings | None = None, store: SnapshotStore | None = None
    ) -> SnapshotPublisher:
        settings = settings or self.settings
        backend = lock_backend_from_url(settings.lock_url, settings.shared.aws)
        self.backends.append(backend)
        return SnapshotPublisher(
            settings, backend, self.stack.target, store or self.store, work_dir=self.work
        )

    def publish(self, hooks: PublishHooks | None = None) -> PublishResult:
        result: PublishResult = self.publisher().publish(self.words, hooks)
        return result

    def pointer_raw(self) -> bytes:
        s3 = self.store.s3
        return bytes(
            s3.get_object(Bucket=self.store.bucket, Key=pointer_key(self.words))["Body"].read()
        )

    def versions(self) -> list[str]:
        return [v.version for v in self.store.versions(self.words)]


@pytest.fixture
def system(env: dict[str, str], tmp_path: Path) -> Iterator[System]:
    stack = Stack(env, tmp_path)
    receipts = demo_receipts(RECEIPTS, lines=LINES, words_per_line=WORDS_PER_LINE)
    stack.seed(receipts)
    settings = WorkerSettings.from_env(env)
    made = System(
        stack, settings, SnapshotStore.from_settings(settings), receipts, tmp_path / "work"
    )
    yield made
    for backend in made.backends:
        backend.close()
    stack.stop()


def restored(system: System, version: str | None, into: Path) -> Any:
    """Restore a version into ``into`` (named after the collection) and open it."""
    result = restore_snapshot(system.store, system.words, into, version)
    assert result.directory == into
    return EmbeddedChromaTarget(into.parent).collection(system.words)


def _all(collection: Any) -> dict[str, tuple[Any, dict[str, Any]]]:
    got = collection.get(include=["embeddings", "metadatas"])
    return {
        i: (e, m) for i, e, m in zip(got["ids"], got["embeddings"], got["metadatas"], strict=True)
    }


# -- one instant ---------------------------------------------------------------------------------


class EditionWriter(threading.Thread):
    """Keeps moving every receipt's merchant to the next edition, one batch per edition."""

    def __init__(self, system: System) -> None:
        super().__init__(daemon=True)
        self.system = system
        self.runtime = WorkerRuntime(system.settings, target=system.stack.target)
        self.started_edition = 0
        self.completed_edition = 0
        self.stop = threading.Event()
        self.error: BaseException | None = None

    def run(self) -> None:
        stack = self.system.stack
        try:
            edition = 0
            while not self.stop.is_set():
                edition += 1
                self.started_edition = edition
                for index, spec in enumerate(self.system.receipts):
                    stack.table.put_item(
                        Item={
                            "PK": image_pk(spec.image_id),
                            "SK": f"{receipt_sk(spec.receipt_id)}#METADATA",
                            **merchant_fields(index, edition),
                        }
                    )
                changes = [
                    make_change("RECEIPT_METADATA", "MODIFY", spec) for spec in self.system.receipts
                ]
                outcome = self.runtime.apply_batch(batch(self.system.words, *changes))
                assert not outcome.failed and not outcome.waiting, outcome
                self.completed_edition = edition
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            self.error = exc
        finally:
            self.runtime.lock_backend.close()


def test_publish_during_writes_is_one_instant_and_restores_queryable(
    system: System, tmp_path: Path
) -> None:
    target = system.stack.target
    live = target.collection(system.words)
    expected = {i: e for i, (e, _m) in _all(live).items()}
    assert len(expected) == RECEIPTS * LINES * WORDS_PER_LINE
    target.max_batch_size = SMALL_CHUNK  # one batch = many write calls: a torn copy would show
    writer = EditionWriter(system)
    writer.start()
    published: list[tuple[PublishResult, int, int]] = []
    try:
        for round_ in range(3):

            def progressed(r: int = round_) -> bool:
                return writer.error is not None or writer.completed_edition >= 2 * r + 1

            wait_for(progressed, 30, what="the writer to complete more batches")
            assert writer.error is None, writer.error
            done_before = writer.completed_edition
            result = system.publish()
            published.append((result, done_before, writer.started_edition))
    finally:
        writer.stop.set()
        writer.join(30)
    assert writer.error is None, writer.error
    assert writer.completed_edition >= 5

    for number, (result, done_before, started_after) in enumerate(published):
        restored_col = restored(
            system, result.version, tmp_path / f"restore-{number}" / system.words
        )
        rows = _all(restored_col)
        assert sorted(rows) == sorted(expected)
        assert result.manifest.count == len(expected)
        editions = {edition_of(m) for _e, m in rows.values()}
        # Every embedding of every receipt carries the same edition: no half-applied batch.
        assert len(editions) == 1, (result.version, sorted(editions))
        (edition,) = editions
        assert done_before <= edition <= started_after, (edition, done_before, started_after)
        for eid, (embedding, _m) in rows.items():
            assert np.allclose(embedding, expected[eid], rtol=1e-6)
        probes = sorted(expected)[:: len(expected) // 4]
        found = restored_col.query(query_embeddings=[vector(p) for p in probes], n_results=1)
        assert [ids[0] for ids in found["ids"]] == probes
        by_id = restored_col.get(ids=probes[:2], include=["metadatas"])
        assert sorted(by_id["ids"]) == sorted(probes[:2])
    versions = [r.version for r, _b, _a in published]
    assert versions == sorted(versions)  # ids sort by time
    for result, _b, _a in published:
        # The id carries the fencing number of the lease the copy was taken under.
        assert parse_version(result.version)[1] == result.manifest.fence > 0
    assert system.store.latest(system.words).version == versions[-1]


# -- promotion only under the lease ---------------------------------------------------------------


def steal_lock(env: dict[str, str], lock_url: str, collection: str) -> None:
    """Another worker takes the collection's lock over, at the lock store itself."""
    name = lock_name(collection)
    if lock_url.startswith("redis"):
        client = redis.Redis.from_url(lock_url)
        client.set(lock_key(name), "thief", px=30_000)
        client.incr(f"{lock_key(name)}:fence")
        client.close()
        return
    table = lock_url.removeprefix("dynamodb://")
    aws = AwsSettings.from_env(env)
    boto3.client("dynamodb", **aws.client_kwargs()).update_item(
        TableName=table,
        Key={"lock_name": {"S": name}},
        UpdateExpression="SET #o = :o, expires_at = :e ADD fence :one",
        ExpressionAttributeNames={"#o": "owner"},
        ExpressionAttributeValues={
            ":o": {"S": "thief"},
            ":e": {"N": str(Decimal(time.time() + 30))},
            ":one": {"N": "1"},
        },
    )


@pytest.mark.parametrize("store_kind", ["redis", "dynamodb"])
def test_lease_lost_before_promotion_aborts_and_leaves_the_pointer(
    system: System, env: dict[str, str], store_kind: str
) -> None:
    settings = system.settings
    if store_kind == "dynamodb":
        table = f"locks-{uuid.uuid4().hex[:8]}"
        ensure_lock_table(settings.shared.aws, table)
        settings = replace(settings, lock_url=f"dynamodb://{table}")
    first = system.publisher(settings).publish(system.words)
    before = system.pointer_raw()
    reached: list[str] = []

    def take_over(version: str) -> None:
        reached.append(version)
        steal_lock(env, settings.lock_url, system.words)

    with pytest.raises(PromotionRefused, match="not promoted") as refused:
        system.publisher(settings).publish(system.words, PublishHooks(before_promote=take_over))
    assert first.version in str(refused.value)  # "latest stays ..."
    assert len(reached) == 1 and reached[0] != first.version
    assert system.pointer_raw() == before
    assert system.versions() == [first.version]  # the unpromoted version is gone
    info = lock_backend_from_url(settings.lock_url, settings.shared.aws).info(
        lock_name(system.words)
    )
    assert info.owner == "thief"  # never released somebody else's lock


# -- failed uploads -------------------------------------------------------------------------------


class CuttableProxy:
    """A TCP forwarder to moto that can be cut: the network failing under an upload."""

    def __init__(self, target_port: int) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self.listener.getsockname()[1])
        self.target_port = target_port
        self.sockets: list[socket.socket] = []
        self.guard = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.target_port))
            with self.guard:
                self.sockets += [client, upstream]
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(source, sink), daemon=True).start()

    @staticmethod
    def _pipe(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass

    def cut(self) -> None:
        # shutdown() wakes the thread blocked in accept(); close() alone would not.
        with contextlib.suppress(OSError):
            self.listener.shutdown(socket.SHUT_RDWR)
        self.listener.close()
        with self.guard:
            for sock in self.sockets:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()


def test_upload_that_fails_on_the_network_leaves_the_pointer(system: System) -> None:
    moto_port = int(str(system.settings.shared.aws.endpoint_url).rsplit(":", 1)[1])
    proxy = CuttableProxy(moto_port)
    aws = replace(system.settings.shared.aws, endpoint_url=f"http://127.0.0.1:{proxy.port}")
    flaky = SnapshotStore(system.store.bucket, aws)
    first = system.publisher(store=flaky).publish(system.words)
    before = system.pointer_raw()

    with pytest.raises(UploadFailed, match="unreachable") as failed:
        system.publisher(store=flaky).publish(
            system.words, PublishHooks(before_upload=lambda _v: proxy.cut())
        )
    assert "not promoted" in str(failed.value)
    assert system.pointer_raw() == before, (system.pointer_raw(), before)
    assert system.versions() == [first.version], (system.store.versions(system.words), first)
    # The lease was released: the next writer gets it at once.
    info = lock_backend_from_url(system.settings.lock_url).info(lock_name(system.words))
    assert info.owner is None


def test_upload_that_arrives_truncated_is_not_promoted(system: System) -> None:
    first = system.publish()
    before = system.pointer_raw()
    s3, bucket = system.store.s3, system.store.bucket

    def truncate(version: str) -> None:
        key = archive_key(system.words, version)
        body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        s3.put_object(Bucket=bucket, Key=key, Body=body[: len(body) // 2])

    with pytest.raises(UploadFailed, match="bytes after the upload"):
        system.publish(PublishHooks(after_upload=truncate))
    assert system.pointer_raw() == before
    assert system.versions() == [first.version]


# -- retention ------------------------------------------------------------------------------------


def test_retention_keeps_the_newest_and_deletes_only_after_promotion(
    system: System, env: dict[str, str]
) -> None:
    system.settings = replace(system.settings, snapshot_keep=2)
    v1 = system.publish().version
    v2 = system.publish().version
    assert system.versions() == [v1, v2]
    # A leftover of a failed publish, older than the pointer: retention removes it too.
    leftover = version_id(parse_version(v1)[0].replace(microsecond=0), 1)
    assert leftover < v1
    system.store.s3.put_object(
        Bucket=system.store.bucket, Key=archive_key(system.words, leftover), Body=b"partial"
    )
    seen_before_promotion: list[list[str]] = []
    result = system.publish(
        PublishHooks(before_promote=lambda _v: seen_before_promotion.append(system.versions()))
    )
    v3 = result.version
    assert seen_before_promotion == [[leftover, v1, v2, v3]]  # nothing deleted before promotion
    assert sorted(result.pruned) == sorted([leftover, v1])
    assert system.versions() == [v2, v3]
    assert system.store.latest(system.words).version == v3

    # A publish that is not promoted deletes nothing but its own version.
    with pytest.raises(PromotionRefused):
        system.publish(
            PublishHooks(
                before_promote=lambda _v: steal_lock(env, system.settings.lock_url, system.words)
            )
        )
    assert system.versions() == [v2, v3]
    # Older versions stay restorable by id.
    col = restored(system, v2, system.work.parent / "old" / system.words)
    assert col.count() == RECEIPTS * LINES * WORDS_PER_LINE


# -- refusing bad archives ------------------------------------------------------------------------


def _tar(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        ("flipped", "is corrupt: its sha256 is"),
        ("truncated", "is truncated or padded"),
        ("not-gzip", "not a readable .tar.gz archive"),
        ("escaping", "refusing path '../escape'"),
        ("no-database", "holds no chroma.sqlite3"),
    ],
)
def test_corrupt_or_truncated_archive_is_refused_on_restore(
    system: System, tmp_path: Path, damage: str, message: str
) -> None:
    version = system.publish().version
    s3, bucket = system.store.s3, system.store.bucket
    key = archive_key(system.words, version)
    good = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    if damage == "flipped":
        body = bytearray(good)
        body[len(body) // 2] ^= 0xFF
        s3.put_object(Bucket=bucket, Key=key, Body=bytes(body))
    elif damage == "truncated":
        s3.put_object(Bucket=bucket, Key=key, Body=good[: len(good) // 3])
    else:
        # A broken publisher: the manifest matches the bad archive, so only the
        # deeper checks can catch it.
        bad = {
            "not-gzip": b"this is not a tarball at all",
            "escaping": _tar({"../escape": b"x", "chroma.sqlite3": b""}),
            "no-database": _tar({"readme.txt": b"hello"}),
        }[damage]
        import hashlib

        manifest = system.store.read_manifest(system.words, version)
        forged = replace(manifest, sha256=hashlib.sha256(bad).hexdigest(), size=len(bad))
        s3.put_object(Bucket=bucket, Key=key, Body=bad)
        s3.put_object(Bucket=bucket, Key=manifest_key(system.words, version), Body=forged.to_json())
    destination = tmp_path / "readers" / system.words
    with pytest.raises(CorruptSnapshot, match=message.replace(".", r"\.").replace("(", r"\(")):
        restore_snapshot(system.store, system.words, destination, version)
    assert is_empty(destination)
    assert [p.name for p in destination.parent.iterdir()] == []  # no staging left behind
    assert not (tmp_path / "readers" / "escape").exists()


def test_restore_refuses_a_directory_with_data(system: System) -> None:
    system.publish()
    live = EmbeddedChromaTarget(system.settings.chroma_dir).directory(system.words)
    with pytest.raises(DirectoryNotEmpty, match="not empty"):
        restore_snapshot(system.store, system.words, live)


# -- CLI ------------------------------------------------------------------------------------------


def test_cli_publish_list_restore_and_server_refusal(system: System, tmp_path: Path) -> None:
    stack = system.stack
    published = stack.cli("snapshot", "publish", "--collection", system.words)
    assert published.returncode == 0, published.stderr
    assert f"published {system.words} " in published.stdout
    assert "72 embeddings" in published.stdout
    second = system.publish().version

    listing = stack.cli("snapshot", "list", "--collection", system.words)
    assert listing.returncode == 0, listing.stderr
    lines = listing.stdout.splitlines()
    assert (
        lines[0]
        == f"snapshots of {system.words} in s3://{system.store.bucket}/{system.words}/snapshot/"
    )
    assert lines[1].split() == [
        "version",
        "created",
        "(UTC)",
        "size",
        "embeddings",
        "fence",
        "sha256",
    ]
    assert lines[2].startswith(f"* {second} ")  # newest first, marked latest
    assert " 72 " in lines[2] and "KiB" in lines[2]
    assert lines[-1] == f"  2 version(s); * latest: {second}"
    print(listing.stdout)

    into = tmp_path / "reader" / system.words
    restore = stack.cli("snapshot", "restore", "--collection", system.words, "--dir", str(into))
    assert restore.returncode == 0, restore.stderr
    assert f"restored {system.words} {second} into {into}: 72 embeddings" in restore.stdout
    assert EmbeddedChromaTarget(into.parent).collection(system.words).count() == 72
    again = stack.cli(
        "snapshot", "restore", "--collection", system.words, "--dir", str(into), "--if-empty"
    )
    assert again.returncode == 0, again.stderr
    assert "already holds data; nothing restored" in again.stdout

    server = subprocess.run(
        [sys.executable, "-m", "chromasync.cli", "snapshot", "publish"],
        env={**stack.env, "CHROMASYNC_CHROMA_URL": "http://127.0.0.1:9"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert server.returncode == 2, server.stderr
    assert "points at a Chroma server" in server.stderr and "persist directory" in server.stderr


# -- inside the worker ----------------------------------------------------------------------------


def test_beat_schedule_sends_snapshots_to_each_collection_queue(env: dict[str, str]) -> None:
    assert celery_settings({**env, "CHROMASYNC_SNAPSHOT_INTERVAL": "0"})["beat_schedule"] == {}
    schedule = celery_settings({**env, "CHROMASYNC_SNAPSHOT_INTERVAL": "600"})["beat_schedule"]
    lines, words = env["CHROMASYNC_COLLECTIONS"].split(",")
    assert schedule[f"snapshot-{words}"] == {
        "task": SNAPSHOT_TASK_NAME,
        "schedule": 600.0,
        "args": [words],
        "options": {"queue": words, "expires": 600.0},
    }
    assert schedule[f"snapshot-{lines}"]["options"]["queue"] == lines


def test_worker_restores_before_consuming_catches_up_and_beat_publishes(
    system: System, tmp_path: Path
) -> None:
    stack = system.stack
    first = system.publish()
    # A change waits in the queue while no worker runs.
    spec = system.receipts[0]
    stack.table.put_item(
        Item={
            "PK": image_pk(spec.image_id),
            "SK": f"{receipt_sk(spec.receipt_id)}#METADATA",
            **merchant_fields(0, 7),
        }
    )
    stack.send(
        batch(system.words, make_change("RECEIPT_METADATA", "MODIFY", spec)).to_payload(),
        system.words,
    )

    fresh = tmp_path / "fresh-machine"
    extra = {
        "CHROMASYNC_CHROMA_DIR": str(fresh),
        "CHROMASYNC_RESTORE_ON_START": "true",
        "CHROMASYNC_SNAPSHOT_INTERVAL": "1",
    }
    stack.start_worker(system.words, extra_env=extra)
    # Restored in worker_init, before the consumer started (and so before "ready").
    assert (fresh / system.words / "chroma.sqlite3").is_file()
    beat_log = tmp_path / "beat.log"
    with open(beat_log, "ab") as out:
        beat = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "tasks",
                "beat",
                "--loglevel",
                "INFO",
                "--schedule",
                str(tmp_path / "beat-schedule"),
            ],
            env={**stack.env, **extra},
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        restored_col = EmbeddedChromaTarget(fresh).collection(system.words)

        def caught_up() -> bool:
            rows = _all(restored_col)
            mine = [m for m in (r[1] for r in rows.values()) if m["image_id"] == spec.image_id]
            return len(rows) == 72 and all(edition_of(m) == 7 for m in mine)

        wait_for(caught_up, 60, interval=0.2, what="the restored worker to apply the queued change")

        def newer_snapshot() -> str | None:
            if beat.poll() is not None:
                raise RuntimeError(f"beat exited:\n{beat_log.read_text()}")
            version = system.store.latest(system.words).version
            return version if version != first.version else None

        version: str = (
            wait_for(newer_snapshot, 60, interval=0.3, what="a snapshot published by beat") or ""
        )
    finally:
        beat.terminate()
        beat.wait(15)
    assert parse_version(version)[1] > parse_version(first.version)[1]
    # The worker's periodic snapshot holds what it caught up on.
    col = restored(system, version, tmp_path / "from-beat" / system.words)
    rows = _all(col)
    assert len(rows) == 72
    assert {edition_of(m) for _e, m in rows.values() if m["image_id"] == spec.image_id} == {7}


def test_worker_refuses_to_start_on_a_corrupt_snapshot(system: System, tmp_path: Path) -> None:
    version = system.publish().version
    s3, bucket = system.store.s3, system.store.bucket
    key = archive_key(system.words, version)
    body = bytearray(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
    body[-100] ^= 0xFF
    s3.put_object(Bucket=bucket, Key=key, Body=bytes(body))
    fresh = tmp_path / "fresh-machine"
    env = {
        **system.stack.env,
        "CHROMASYNC_CHROMA_DIR": str(fresh),
        "CHROMASYNC_RESTORE_ON_START": "true",
    }
    log = tmp_path / "worker.log"
    worker = WorkerProcess.start(
        system.words, system.stack.settings.queue_for(system.words), env, log
    )
    try:
        code = worker.process.wait(60)
    finally:
        worker.stop(timeout=5)
    text = log.read_text()
    assert code != 0, text
    assert f"restore of {system.words!r} before consuming failed" in text
    assert "is corrupt: its sha256 is" in text
    assert " ready." not in text  # it never consumed
    assert is_empty(fresh / system.words)
