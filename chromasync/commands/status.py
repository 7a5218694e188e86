"""``chromasync status``: one screen with queues, dead letters, locks, last applied batches, lag.

Each part asks its own service through :mod:`chromasync.probes`; a service
that does not answer gets one line naming it and what went wrong, the other
parts are still shown, and the exit status is 3
(:data:`chromasync.core.exits.EXIT_UNAVAILABLE`).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from chromasync.core.exits import EXIT_UNAVAILABLE
from chromasync.core.urls import redact_url
from chromasync.probes import (
    Unreachable,
    last_applied,
    lock_backend,
    lock_infos,
    metrics_store,
    probe,
    progress_store,
    sqs_client,
    sqs_where,
)
from chromasync.provision import queue_depths

if TYPE_CHECKING:
    from chromasync.core.config import Settings
    from tasks.config import WorkerSettings


def register(sub: Any) -> None:
    status = sub.add_parser(
        "status",
        help="queues, dead letters, locks, last applied batch per collection and lag",
        description="One screen of the system's state. Exit 0 when every service answered, "
        "3 when one could not be reached (the screen names it).",
    )
    status.set_defaults(func=main)


# -- rendering -----------------------------------------------------------------------------


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]], indent: int = 2) -> list[str]:
    """Aligned columns: the first left-aligned, numbers right-aligned, the rest left-aligned."""
    cells = [[str(c) for c in headers]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    numeric = [
        i > 0 and all(isinstance(row[i], int | float) or row[i] == "-" for row in rows)
        for i in range(len(headers))
    ]
    lines = []
    for row in cells:
        parts = [
            cell.rjust(widths[i]) if numeric[i] else cell.ljust(widths[i])
            for i, cell in enumerate(row)
        ]
        lines.append(" " * indent + "  ".join(parts).rstrip())
    return lines


def seconds(value: float | None) -> str:
    if value is None:
        return "-"
    if value < 120:
        return f"{value:.1f}s"
    if value < 7200:
        return f"{value / 60:.1f}m"
    return f"{value / 3600:.1f}h"


def when(ts: float, now: float) -> str:
    stamp = datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%SZ")
    return f"{stamp} ({seconds(max(0.0, now - ts))} ago)"


@dataclass
class Screen:
    lines: list[str] = field(default_factory=list)
    unreachable: list[Unreachable] = field(default_factory=list)

    def add(self, *lines: str) -> None:
        self.lines.extend(lines)

    def failed(self, problem: Unreachable) -> None:
        self.unreachable.append(problem)
        self.lines.append(f"  {problem.line()}")


def _queues(screen: Screen, settings: Settings) -> None:
    where = sqs_where(settings)
    depths = probe(where, lambda: queue_depths(settings, sqs_client(settings)))
    screen.add(f"queues ({where})")
    if isinstance(depths, Unreachable):
        screen.failed(depths)
        return
    titles = {"queue": "tasks", "dead_letter": "dead letters", "quarantine": "stream rejects"}
    rows: list[list[Any]] = []
    for depth in depths:
        if not depth.exists:
            rows.append([depth.name, titles[depth.kind], "-", "-", "-", "not created yet"])
            continue
        note = ""
        if depth.kind == "dead_letter" and depth.visible + depth.in_flight:
            note = "see: chromasync dlq list"
        elif depth.kind == "quarantine" and depth.visible + depth.in_flight:
            note = "malformed stream records kept here"
        rows.append(
            [depth.name, titles[depth.kind], depth.visible, depth.in_flight, depth.delayed, note]
        )
    screen.add(*table(["queue", "holds", "visible", "in flight", "delayed", ""], rows))


def _locks(screen: Screen, settings: WorkerSettings) -> str | None:
    """The lock table; returns the store's name, or None when it did not answer."""
    built = probe(redact_url(settings.lock_url), lambda: lock_backend(settings))
    if isinstance(built, Unreachable):
        screen.add("", "locks")
        screen.failed(built)
        return None
    backend, where = built
    try:
        infos = probe(where, lambda: lock_infos(backend, list(settings.shared.targets)))
    finally:
        backend.close()
    screen.add("", f"locks ({where})")
    if isinstance(infos, Unreachable):
        screen.failed(infos)
        return None
    rows: list[list[Any]] = []
    for collection, info in infos.items():
        if info is None:
            rows.append([collection, "free (no lock taken yet)", "-", "-"])
        elif info.owner is None:
            rows.append([collection, "free", "-", info.fence])
        else:
            rows.append([collection, info.owner, seconds(info.remaining), info.fence])
    screen.add(*table(["collection", "holder", "lease left", "fence"], rows))
    return where


def _last_applied(screen: Screen, settings: WorkerSettings, where: str, now: float) -> None:
    screen.add("", f"last applied batch ({where})")
    store = progress_store(settings)
    try:
        applied = probe(where, lambda: last_applied(store, list(settings.shared.targets)))
    finally:
        store.close()
    if isinstance(applied, Unreachable):
        screen.failed(applied)
        return
    rows: list[list[Any]] = []
    for collection, batch in applied.items():
        if batch is None:
            rows.append([collection, "nothing applied yet", "-", "-", "-", "-", "-"])
            continue
        rows.append(
            [
                collection,
                batch.batch_id[:12],
                when(batch.applied_at, now),
                batch.fence,
                batch.changes,
                batch.highest_sequence or "-",
                seconds(batch.lag),
            ]
        )
    headers = ["collection", "batch", "applied at", "fence", "changes", "highest sequence", "lag"]
    screen.add(*table(headers, rows))


def _metrics(screen: Screen, settings: Settings, now: float) -> None:
    from tasks.metrics.catalogue import APPLIED, DEAD_LETTERED, FAILED, RECEIVED, RESTARTS
    from tasks.metrics.store import METRICS_URL_ENV

    store = probe(METRICS_URL_ENV, metrics_store)
    if isinstance(store, Unreachable):
        screen.add("", "changes and stream lag")
        screen.failed(store)
        return
    if store is None:
        screen.add("", f"changes and stream lag: metrics are off ({METRICS_URL_ENV}=off)")
        return
    where = f"metrics Redis at {store.shown_url}"
    try:
        snapshot = probe(where, store.read)
    finally:
        store.close()
    screen.add("", f"changes since metrics began ({where})")
    if isinstance(snapshot, Unreachable):
        screen.failed(snapshot)
        return
    counters = (RECEIVED, APPLIED, FAILED, DEAD_LETTERED)
    rows: list[list[Any]] = [
        [c, *(int(snapshot.total(m, collection=c)) for m in counters)] for c in settings.targets
    ]
    screen.add(*table(["collection", "received", "applied", "failed", "dead-lettered"], rows))
    restarts = sorted(snapshot.counters.get(RESTARTS.name, {}).items())
    if restarts:
        screen.add("", "restarts by chromasync run")
        screen.add(*table(["component", "restarts"], [[c, int(n)] for (c,), n in restarts]))
    else:
        screen.add("", "restarts by chromasync run: none")
    screen.add("", "stream poller")
    if not snapshot.shards:
        screen.add("  no shard read yet (is chromasync poll running with metrics?)")
        return
    rows = []
    for shard in sorted(snapshot.shards.values(), key=lambda s: s.shard_id):
        read = when(shard.last_read_at, now) if shard.last_read_at else "-"
        state = "caught up" if shard.caught_up else "reading"
        rows.append([shard.shard_id, seconds(shard.lag(now)), state, read])
    screen.add(*table(["shard", "lag", "state", "last read"], rows))


def render(now: float | None = None) -> Screen:
    from tasks.config import WorkerSettings

    now = time.time() if now is None else now
    settings = WorkerSettings.from_env()
    shared = settings.shared
    screen = Screen()
    stamp = datetime.fromtimestamp(now, UTC).strftime("%Y-%m-%d %H:%M:%SZ")
    screen.add(
        f"chromasync status  {stamp}  table {shared.table}, "
        f"collections {', '.join(shared.collections)}"
        + "".join(f", sink {name}" for name in shared.sinks[1:]),
        "",
    )
    _queues(screen, shared)
    where = _locks(screen, settings)
    if where is None:
        screen.add("", "last applied batch: not read, it is kept in the lock store (above)")
    else:
        _last_applied(screen, settings, where, now)
    _metrics(screen, shared, now)
    if screen.unreachable:
        names = ", ".join(dict.fromkeys(u.service for u in screen.unreachable))
        screen.add("", f"{len(screen.unreachable)} service(s) unreachable: {names}")
    return screen


def main(args: argparse.Namespace) -> int:
    screen = render()
    print("\n".join(screen.lines))
    return EXIT_UNAVAILABLE if screen.unreachable else 0
