"""Merging a compaction run's delta (new embeddings in S3) into its Chroma collection.

An upstream embedding job writes the new embeddings of a receipt into a small
Chroma ``PersistentClient`` directory, puts it in S3 and then INSERTs a
COMPACTION_RUN item whose ``lines_delta_prefix`` / ``words_delta_prefix`` say
where. The worker, holding the collection's lease, calls
:class:`S3DeltaMerger` (a :data:`tasks.writer.DeltaMerger`) for that change.

Where a delta lies (the value of ``{role}_delta_prefix``):

* ``s3://bucket/key/prefix/`` names bucket and key prefix;
* ``key/prefix/`` is a bare key prefix in the bucket ``CHROMASYNC_DELTA_BUCKET``;
* either form ending in ``.tar.gz`` names the tarball object itself.

Under a prefix the delta is ``delta.tar.gz`` (the Chroma directory tarred, at
the archive's root or inside one folder) if that object exists, else the
Chroma directory's files themselves (``prefix/chroma.sqlite3``,
``prefix/<segment uuid>/...``). A prefix without a trailing ``/`` gets one,
so ``runs/1`` never picks up ``runs/10/``.

Why it works the way it does:

* The run item is re-read with a consistent GetItem (the message's
  ``new_image`` may be missing or stale): current state wins.
* Redelivery is normal (at-least-once): a run already marked done for this
  collection, or gone from the table, is skipped and returns 0. Upserts are
  idempotent, so a merge interrupted half-way is simply done again.
* Nothing under the prefix yet raises :class:`DeltaNotReady`, a
  ``ConnectionError`` so :func:`tasks.errors.is_transient` retries it with
  backoff: the upload may still be on its way.
* The delta comes from another service: tarball members and object keys are
  checked before anything is written, so a hostile or broken delta cannot
  write outside its temporary directory (:class:`UnsafeDelta`).
* The lease is checked before every upsert and before marking the run done:
  a worker that lost its lease stops before its next write.
* The run is marked done per collection (``{role}_merge_status`` and
  friends); the producer ignores a MODIFY of a COMPACTION_RUN, so marking
  never feeds back into the stream.
"""

from __future__ import annotations

import logging
import shutil
import tarfile
import tempfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from chromasync.core.attributes import decode_image
from chromasync.core.config import AwsSettings
from chromasync.core.contract import Change
from chromasync.core.entities import CollectionRole, image_pk, receipt_sk
from tasks.chroma.persistent import open_directory
from tasks.chroma.target import ChromaTarget, chunks
from tasks.config import DELTA_BUCKET_ENV
from tasks.errors import DeltaNotReady, aws_error_code
from tasks.writer import LeaseCheck

if TYPE_CHECKING:
    from tasks.config import WorkerSettings

log = logging.getLogger(__name__)

#: Object looked for under a delta prefix before falling back to the directory form.
DELTA_TARBALL = "delta.tar.gz"
#: The file at the root of every Chroma ``PersistentClient`` directory.
CHROMA_DB_FILE = "chroma.sqlite3"
#: ``{role}_merge_status`` of a run whose delta is merged into that role's collection.
MERGE_COMPLETED = "COMPLETED"
#: Prefix of the temporary directories deltas are downloaded into.
TEMP_PREFIX = "chromasync-delta-"
#: S3 error codes meaning "that object is not there" (not uploaded yet, or replaced).
_NOT_FOUND_CODES = frozenset({"404", "NoSuchKey", "NotFound"})

#: Maps a target collection's name to its role (which ``{role}_delta_prefix`` to read).
RoleResolver = Callable[[str], CollectionRole]


class InvalidDelta(ValueError):
    """The run's delta can never be merged as it is (permanent: dead-letter it)."""


class UnsafeDelta(InvalidDelta):
    """A tarball member or object key would be written outside the delta's directory."""


class DeltaIncomplete(RuntimeError):
    """After the upserts, some of the delta's ids are not in the target collection."""


def run_sk(receipt_id: int, run_id: str) -> str:
    """The sort key of a COMPACTION_RUN item."""
    return f"{receipt_sk(receipt_id)}#COMPACTION_RUN#{run_id}"


@dataclass(frozen=True)
class DeltaLocation:
    """A delta in S3: a key prefix (ends with ``/``) or one ``.tar.gz`` object."""

    bucket: str
    key: str

    @property
    def is_tarball(self) -> bool:
        return self.key.endswith(".tar.gz")

    def __str__(self) -> str:
        return f"s3://{self.bucket}/{self.key}"


def parse_location(raw: str, default_bucket: str | None) -> DeltaLocation:
    """Resolve a run's ``{role}_delta_prefix`` (see the module docstring for the forms)."""
    text = raw.strip()
    if text.startswith("s3://"):
        bucket, _, key = text[len("s3://") :].partition("/")
    elif "://" in text:
        raise InvalidDelta(f"delta prefix {raw!r}: only s3:// locations are supported")
    elif default_bucket is None:
        raise InvalidDelta(
            f"delta prefix {raw!r} names no bucket: use s3://bucket/key/ or set {DELTA_BUCKET_ENV}"
        )
    else:
        bucket, key = default_bucket, text
    key = key.lstrip("/")
    if not bucket or not key:
        raise InvalidDelta(f"delta prefix {raw!r} must name a bucket and a non-empty key prefix")
    if not key.endswith(".tar.gz") and not key.endswith("/"):
        key += "/"
    return DeltaLocation(bucket, key)


def safe_destination(root: Path, relative: str, what: str) -> Path:
    """Where ``relative`` lands under ``root``; raises :class:`UnsafeDelta` if outside it."""
    path = PurePosixPath(relative)
    if not relative or path.is_absolute() or ".." in path.parts:
        raise UnsafeDelta(
            f"{what}: refusing path {relative!r} (empty, absolute or containing '..'); "
            "a delta may only hold paths inside its own directory"
        )
    destination = (root / path).resolve()
    if not destination.is_relative_to(root.resolve()):
        raise UnsafeDelta(f"{what}: path {relative!r} resolves outside the delta directory")
    return destination


def _check_member(member: tarfile.TarInfo, root: Path, source: str) -> None:
    what = f"{source} member {member.name!r}"
    if member.issym() or member.islnk():
        kind = "a symbolic link" if member.issym() else "a hard link"
        raise UnsafeDelta(
            f"{what} is {kind} (to {member.linkname!r}); a delta may hold only files and folders"
        )
    if not (member.isfile() or member.isdir()):
        raise UnsafeDelta(
            f"{what} is a device, fifo or other special file; "
            "a delta may hold only files and folders"
        )
    safe_destination(root, member.name, what)


def extract_tarball(tarball: Path, root: Path, source: str) -> None:
    """Extract ``tarball`` into ``root`` after checking every member (nothing on refusal)."""
    try:
        with tarfile.open(tarball, "r:gz") as archive:
            members = archive.getmembers()
            for member in members:
                _check_member(member, root, source)
            # The "data" filter repeats the checks and drops modes like setuid.
            archive.extractall(root, members=members, filter="data")
    except (tarfile.TarError, EOFError, zlib.error) as exc:
        raise InvalidDelta(f"{source} is not a readable .tar.gz archive: {exc}") from exc


def chroma_root(directory: Path, source: str, uploading: bool) -> Path:
    """The Chroma directory inside a downloaded delta (the one holding ``chroma.sqlite3``).

    ``uploading`` (directory form): a missing database may just not be uploaded
    yet, so that is :class:`DeltaNotReady`; in a tarball it is a broken delta.
    """
    if (directory / CHROMA_DB_FILE).is_file():
        return directory
    found = sorted(p.parent for p in directory.rglob(CHROMA_DB_FILE) if p.is_file())
    if len(found) == 1:
        return found[0]
    if not found:
        message = f"{source} holds no {CHROMA_DB_FILE}"
        if uploading:
            raise DeltaNotReady(f"{message} (yet: is the upload still running?)")
        raise InvalidDelta(f"{message}; a delta must be a Chroma PersistentClient directory")
    folders = [str(p.relative_to(directory)) for p in found]
    raise InvalidDelta(f"{source} holds several Chroma directories: {folders}")


class S3DeltaMerger:
    """Merges COMPACTION_RUN deltas from S3; one instance per worker process."""

    def __init__(
        self,
        aws: AwsSettings,
        table: str,
        role_of: RoleResolver,
        bucket: str | None = None,
        max_batch_size: int = ChromaTarget.max_batch_size,
        work_dir: Path | str | None = None,
        s3: Any | None = None,
        dynamodb: Any | None = None,
    ) -> None:
        if max_batch_size < 1:
            raise ValueError(f"max_batch_size must be at least 1, got {max_batch_size}")
        self.aws = aws
        self.table = table
        self.role_of = role_of
        self.bucket = bucket
        #: Most ids per Chroma call (Chroma's limit; tests use a small one).
        self.max_batch_size = max_batch_size
        #: Where temporary download directories go (None: the system's temp dir).
        self.work_dir = None if work_dir is None else Path(work_dir)
        self._s3 = s3
        self._dynamodb = dynamodb

    @classmethod
    def from_settings(
        cls,
        settings: WorkerSettings,
        max_batch_size: int = ChromaTarget.max_batch_size,
        work_dir: Path | str | None = None,
    ) -> S3DeltaMerger:
        """A merger for the configured table, delta bucket and two collections."""
        shared = settings.shared
        roles = {
            shared.lines_collection: CollectionRole.LINES,
            shared.words_collection: CollectionRole.WORDS,
        }

        def role_of(name: str) -> CollectionRole:
            try:
                return roles[name]
            except KeyError:
                raise InvalidDelta(
                    f"collection {name!r} is not one of {list(roles)} (CHROMASYNC_COLLECTIONS)"
                ) from None

        return cls(
            shared.aws, shared.table, role_of, settings.delta_bucket, max_batch_size, work_dir
        )

    # Clients are made on first use, so building a worker runtime stays cheap.
    @property
    def s3(self) -> Any:
        if self._s3 is None:
            import boto3

            self._s3 = boto3.client("s3", **self.aws.client_kwargs())
        return self._s3

    @property
    def dynamodb(self) -> Any:
        if self._dynamodb is None:
            import boto3

            self._dynamodb = boto3.client("dynamodb", **self.aws.client_kwargs())
        return self._dynamodb

    def __call__(
        self,
        collection: Any,
        change: Change,
        check_lease: LeaseCheck,
        keep: frozenset[str] | None = None,
    ) -> int:
        """Merge the run's delta into ``collection``; return the number of ids upserted.

        ``keep``: merge only these of the delta's ids (the embeddings the table
        still has lines or words for); None merges every id.
        """
        role = CollectionRole(self.role_of(collection.name))
        keys = change.keys
        if keys.run_id is None:
            raise InvalidDelta(f"{change.entity_type.value} change has no run_id")
        key = {
            "PK": {"S": image_pk(keys.image_id)},
            "SK": {"S": run_sk(keys.receipt_id, keys.run_id)},
        }
        run_name = f"run {keys.run_id} of {keys.image_id}/{keys.receipt_id}"
        run = self._read_run(key)
        if run is None:
            log.info("%s is gone from the table; nothing to merge", run_name)
            return 0
        if run.get(f"{role}_merge_status") == MERGE_COMPLETED:
            log.info("%s is already merged into %s; skipping", run_name, collection.name)
            return 0
        raw = run.get(f"{role}_delta_prefix")
        if raw is None or raw == "":
            log.info("%s has no %s_delta_prefix; nothing to merge", run_name, role)
            return 0
        if not isinstance(raw, str):
            raise InvalidDelta(f"{run_name}: {role}_delta_prefix must be a string, got {raw!r}")
        location = parse_location(raw, self.bucket)
        if self.work_dir is not None:
            self.work_dir.mkdir(parents=True, exist_ok=True)
        workdir = Path(tempfile.mkdtemp(prefix=TEMP_PREFIX, dir=self.work_dir))
        try:
            root = self._fetch(location, workdir)
            count = self._merge(root, collection, str(location), check_lease, keep)
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
        check_lease()
        self._mark_done(key, role, count, run_name)
        log.info(
            "merged %d embeddings of %s from %s into %s", count, run_name, location, collection.name
        )
        return count

    def _read_run(self, key: dict[str, Any]) -> dict[str, Any] | None:
        item = self.dynamodb.get_item(TableName=self.table, Key=key, ConsistentRead=True).get(
            "Item"
        )
        return None if item is None else decode_image(item, "run item")

    def _list(self, location: DeltaLocation) -> list[str]:
        keys: list[str] = []
        paginator = self.s3.get_paginator("list_objects_v2")
        try:
            for page in paginator.paginate(Bucket=location.bucket, Prefix=location.key):
                keys.extend(obj["Key"] for obj in page.get("Contents", []))
        except ClientError as exc:
            if aws_error_code(exc) == "NoSuchBucket":
                raise InvalidDelta(f"bucket of {location} does not exist: {exc}") from exc
            raise
        return keys

    def _download(self, bucket: str, key: str, path: Path) -> None:
        try:
            self.s3.download_file(bucket, key, str(path))
        except ClientError as exc:
            if aws_error_code(exc) in _NOT_FOUND_CODES:
                raise DeltaNotReady(f"s3://{bucket}/{key} is not there (yet): {exc}") from exc
            raise

    def _fetch(self, location: DeltaLocation, workdir: Path) -> Path:
        """Download the delta into ``workdir``; return its Chroma directory."""
        directory = workdir / "delta"
        directory.mkdir()
        tarball_key = location.key if location.is_tarball else location.key + DELTA_TARBALL
        objects = [] if location.is_tarball else self._list(location)
        if location.is_tarball or tarball_key in objects:
            tarball = workdir / DELTA_TARBALL
            self._download(location.bucket, tarball_key, tarball)
            source = f"s3://{location.bucket}/{tarball_key}"
            extract_tarball(tarball, directory, source)
            return chroma_root(directory, source, uploading=False)
        if not objects:
            raise DeltaNotReady(
                f"no delta under {location} yet (neither {DELTA_TARBALL} nor files)"
            )
        # Check every key before downloading any, so a bad listing writes nothing.
        plan = [
            (
                key,
                safe_destination(
                    directory, key[len(location.key) :], f"object s3://{location.bucket}/{key}"
                ),
            )
            for key in objects
            if not key.endswith("/")  # "folder" marker objects hold nothing
        ]
        for key, path in plan:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._download(location.bucket, key, path)
        return chroma_root(directory, str(location), uploading=True)

    def _merge(
        self,
        root: Path,
        collection: Any,
        source: str,
        check_lease: LeaseCheck,
        keep: frozenset[str] | None,
    ) -> int:
        try:
            client = open_directory(root)
        except Exception as exc:
            raise InvalidDelta(f"cannot open {source} as a Chroma directory: {exc}") from exc
        try:
            delta = self._delta_collection(client, collection.name, source)
            # Ids first, then pages by id: paging by id does not depend on an
            # offset order, and the ids are needed again for the check.
            ids = list(delta.get(include=[])["ids"])
            if keep is not None:
                gone = [i for i in ids if i not in keep]
                if gone:
                    log.info(
                        "%s: %d of its %d embeddings belong to lines or words the table no "
                        "longer holds; not merged (first: %s)",
                        source,
                        len(gone),
                        len(ids),
                        gone[:3],
                    )
                    ids = [i for i in ids if i in keep]
            for page_ids in chunks(ids, self.max_batch_size):
                page = delta.get(ids=page_ids, include=["embeddings", "metadatas", "documents"])
                check_lease()
                collection.upsert(
                    ids=page["ids"],
                    embeddings=page["embeddings"],
                    metadatas=page["metadatas"],
                    documents=page["documents"],
                )
            self._verify(collection, ids, source)
            return len(ids)
        finally:
            client.close()

    @staticmethod
    def _delta_collection(client: Any, name: str, source: str) -> Any:
        names = [c.name for c in client.list_collections()]
        if name in names:
            chosen = name
        elif len(names) == 1:
            chosen = names[0]
        else:
            raise InvalidDelta(
                f"{source} holds collections {sorted(names)}; "
                f"it needs one named {name!r} or exactly one"
            )
        return client.get_collection(name=chosen, embedding_function=None)

    def _verify(self, collection: Any, ids: list[str], source: str) -> None:
        missing: list[str] = []
        for chunk in chunks(ids, self.max_batch_size):
            arrived = set(collection.get(ids=chunk, include=[])["ids"])
            missing.extend(i for i in chunk if i not in arrived)
        if missing:
            raise DeltaIncomplete(
                f"{len(missing)} of {len(ids)} ids from {source} are not in "
                f"{collection.name} after the merge (first: {missing[:5]})"
            )

    def _mark_done(
        self, key: dict[str, Any], role: CollectionRole, count: int, run_name: str
    ) -> None:
        try:
            self.dynamodb.update_item(
                TableName=self.table,
                Key=key,
                UpdateExpression="SET #status = :status, #at = :at, #count = :count",
                ConditionExpression="attribute_exists(PK)",
                ExpressionAttributeNames={
                    "#status": f"{role}_merge_status",
                    "#at": f"{role}_merged_at",
                    "#count": f"{role}_merged_count",
                },
                ExpressionAttributeValues={
                    ":status": {"S": MERGE_COMPLETED},
                    ":at": {"S": datetime.now(UTC).isoformat()},
                    ":count": {"N": str(count)},
                },
            )
        except ClientError as exc:
            if aws_error_code(exc) != "ConditionalCheckFailedException":
                raise
            # Deleted while we merged: nobody is left to read the mark.
            log.info("%s vanished during the merge; not marked", run_name)
