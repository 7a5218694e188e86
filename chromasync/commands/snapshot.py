"""``chromasync snapshot publish|list|restore``: consistent copies of the collections in S3."""

from __future__ import annotations

import argparse
import contextlib
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

#: Exit status when a snapshot was refused (lock busy or lost, upload failed, corrupt archive).
EXIT_REFUSED = 1


def register(sub: Any) -> None:
    snapshot = sub.add_parser(
        "snapshot",
        help="publish, list or restore snapshots of the Chroma collections in S3",
        description="Snapshots are consistent copies of an embedded Chroma collection, taken "
        "under the collection's lock, kept in CHROMASYNC_SNAPSHOT_BUCKET under "
        "{collection}/snapshot/{version}/ and promoted through {collection}/snapshot/latest. "
        "Exit 0 on success, 1 when a snapshot was refused, 2 on a configuration error "
        "(including a Chroma server target), 3 when a service is unreachable.",
    )
    actions = snapshot.add_subparsers(dest="action", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--collection", help="one collection (default: every one)")

    publish = actions.add_parser(
        "publish",
        parents=[common],
        help="copy a collection under its lock, upload it, promote it",
    )
    publish.add_argument(
        "--wait",
        type=float,
        metavar="SECONDS",
        help="how long to wait for a busy lock (default: CHROMASYNC_LOCK_WAIT)",
    )
    publish.set_defaults(func=cmd_publish)

    listing = actions.add_parser(
        "list", parents=[common], help="versions with time, size, embeddings and hash"
    )
    listing.set_defaults(func=cmd_list)

    restore = actions.add_parser(
        "restore",
        parents=[common],
        help="restore the latest (or a given) version into an empty directory",
    )
    restore.add_argument("--version", help="a version id from `snapshot list` (default: latest)")
    restore.add_argument(
        "--dir",
        type=Path,
        help="empty directory to restore into (default: CHROMASYNC_CHROMA_DIR/COLLECTION); "
        "needs --collection",
    )
    restore.add_argument(
        "--if-empty",
        action="store_true",
        help="succeed without doing anything when the directory already holds data or nothing "
        "was promoted yet (for a start script that runs before the worker)",
    )
    restore.set_defaults(func=cmd_restore)


def _size(size: int) -> str:
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} B"  # pragma: no cover - the loop always returns


def _refused(what: str, exc: object) -> None:
    print(f"chromasync snapshot: {what}: {exc}", file=sys.stderr)


def cmd_publish(args: argparse.Namespace) -> int:
    from tasks.chroma.factory import chroma_target_from_settings
    from tasks.config import WorkerSettings
    from tasks.lease import LockBusy
    from tasks.locks import lock_backend_from_url
    from tasks.snapshots import SnapshotError, SnapshotPublisher, SnapshotStore, check_supported

    settings = WorkerSettings.from_env()
    check_supported(settings)
    if args.wait is not None:
        settings = replace(settings, lock_wait=max(0.0, args.wait))
    collections = settings.shared.select_collections(args.collection)
    backend = lock_backend_from_url(settings.lock_url, settings.shared.aws)
    publisher = SnapshotPublisher(
        settings,
        backend,
        chroma_target_from_settings(settings),
        SnapshotStore.from_settings(settings),
    )
    failed = 0
    try:
        for collection in collections:
            try:
                result = publisher.publish(collection)
            except LockBusy as exc:
                _refused(f"{collection} not published", f"{exc}; retry, or give --wait")
                failed += 1
                continue
            except SnapshotError as exc:
                _refused(f"{collection} not published", exc)
                failed += 1
                continue
            m = result.manifest
            print(
                f"published {collection} {result.version}: {m.count} embeddings, "
                f"{_size(m.size)}, sha256 {m.sha256[:16]}  (writes paused "
                f"{result.copy_seconds:.2f}s, lock held {result.lock_hold:.2f}s)"
            )
            if result.pruned:
                print(f"  retention: deleted {len(result.pruned)} older version(s)")
            if result.prune_error:
                print(f"  retention failed (next publish retries): {result.prune_error}")
    finally:
        backend.close()
    return EXIT_REFUSED if failed else 0


def cmd_list(args: argparse.Namespace) -> int:
    from tasks.config import WorkerSettings
    from tasks.snapshots import SnapshotError, SnapshotStore
    from tasks.snapshots.layout import snapshots_prefix

    settings = WorkerSettings.from_env()
    store = SnapshotStore.from_settings(settings)
    for collection in settings.shared.select_collections(args.collection):
        pointer, _etag = store.read_pointer(collection)
        versions = store.versions(collection)
        print(f"snapshots of {collection} in {store.url(snapshots_prefix(collection))}")
        if not versions:
            print("  none")
            continue
        print(
            f"  {'version':<37} {'created (UTC)':<19} {'size':>10} {'embeddings':>10}  "
            f"{'fence':>6}  sha256"
        )
        for stored in reversed(versions):
            mark = "*" if pointer and pointer.version == stored.version else " "
            if not stored.complete:
                print(f"{mark} {stored.version:<37} (incomplete: upload in progress, or failed)")
                continue
            try:
                m = store.read_manifest(collection, stored.version)
            except SnapshotError as exc:
                print(f"{mark} {stored.version:<37} (unreadable manifest: {exc})")
                continue
            created = m.created_at[:19].replace("T", " ")
            print(
                f"{mark} {stored.version:<37} {created:<19} {_size(m.size):>10} {m.count:>10}  "
                f"{m.fence:>6}  {m.sha256[:16]}"
            )
        latest = pointer.version if pointer else "none promoted yet"
        print(f"  {len(versions)} version(s); * latest: {latest}")
    return 0


def cmd_restore(args: argparse.Namespace) -> int:
    from chromasync.core.config import ConfigError
    from tasks.chroma.targets.embedded import EmbeddedChromaTarget
    from tasks.config import WorkerSettings
    from tasks.snapshots import (
        NoSnapshot,
        SnapshotError,
        SnapshotStore,
        check_supported,
        is_empty,
        parse_version,
        restore_snapshot,
    )

    settings = WorkerSettings.from_env()
    if args.dir is None:
        check_supported(settings)  # the default directory is the embedded target's
    elif args.collection is None:
        raise ConfigError("--dir restores one collection: give --collection too")
    if args.version is not None:
        if args.collection is None:
            raise ConfigError("--version names a version of one collection: give --collection too")
        try:
            parse_version(args.version)
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
    store = SnapshotStore.from_settings(settings)
    target = EmbeddedChromaTarget(settings.chroma_dir)
    failed = 0
    for collection in settings.shared.select_collections(args.collection):
        directory = args.dir if args.dir is not None else target.directory(collection)
        if args.if_empty and not is_empty(directory):
            print(f"{collection}: {directory} already holds data; nothing restored")
            continue
        # Into the collection's own directory: keep a local writer out meanwhile.
        guard = target.writing(collection) if args.dir is None else contextlib.nullcontext()
        try:
            with guard:
                result = restore_snapshot(store, collection, directory, args.version)
        except SnapshotError as exc:
            if args.if_empty and isinstance(exc, NoSnapshot):
                print(f"{collection}: {exc}; nothing restored")
                continue
            _refused(f"{collection} not restored", exc)
            failed += 1
            continue
        print(
            f"restored {collection} {result.version} into {result.directory}: "
            f"{result.count} embeddings, sha256 {result.sha256[:16]} verified"
        )
    return EXIT_REFUSED if failed else 0
