"""Where a worker's CPU per embedding goes: each stage of applying a batch, in this process.

Run ``python -m benchmarks.apply_cpu``: it starts dynalite (the table, kept-alive
connections as on AWS) beside the bench's stack, seeds the bench's receipts and
their embeddings, writes single-embedding changes (``--changes``, a third each
label, line edit, word edit) and builds their changes from the writes' stream
records with the producer's own ``detect``. Then, per collection and in batches
of ``--batch`` changes (the Lambda-fed tasks' size), it runs the steps of
:meth:`tasks.sinks.chroma.ChromaSink.apply` one after another, each timed in CPU
seconds of this process (its read threads included):

* ``read``: :meth:`TableReader.read` (the consistent reads, HTTP and JSON, and
  the decoding of the items);
* ``plan``: :func:`tasks.plan.build_plan` (effects, projections, label summaries);
* ``chroma get``: which planned ids exist (``collection.get``);
* ``chroma update``: the update itself, the sink's own cost.

It prints µs per embedding for each step, each against Chroma's own update at
1,000 ids per call measured here too (the denominator of the issue 17 target,
as ``chromasync bench`` measures it in its sink section): what the worker's CPU
per embedding is made of, before the Celery worker's own share (receiving, the
lease, acks, events, metrics), which ``chromasync bench`` measures whole. Each
stage is run ``--repeats`` times on fresh batches; the best is kept.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from benchmarks.parallel_table import ParallelTableStack, write_recorded
from benchmarks.sink import text_patch
from benchmarks.workload import WorkloadBuilder, bench_receipts

#: Stages in the order :meth:`ChromaSink.apply` runs them.
STAGES = ("read", "plan", "chroma get", "chroma update")
#: Ids per call of the reference update (the sink limit's, ``benchmarks/sink.py``).
REFERENCE_IDS = 1000


def _changes(stack: ParallelTableStack, builder: WorkloadBuilder, count: int, tag: str) -> Any:
    """The changes of ``count`` single-embedding writes, by collection name."""
    from chromasync.core.contract import Change
    from producers.changes import Detected, detect
    from producers.decoding import decode_record

    records = write_recorded(stack, builder.single(count, tag), "dynalite")
    by_target: dict[str, list[Change]] = defaultdict(list)
    for record in records:
        found = detect(decode_record(record), stack.settings)
        if isinstance(found, Detected):
            for target in found.targets:
                by_target[target].append(Change.model_validate(found.change))
    return by_target


def _stages(sink: Any, target: str, batch: list[Any]) -> tuple[dict[str, float], int, int]:
    """CPU seconds of each stage of applying ``batch`` to ``target``; embeddings updated
    and metadata keys written. The Chroma stages call what :class:`ChromaWriter` calls."""
    from tasks.chroma.target import chunks
    from tasks.plan import build_plan, read_scopes

    role = sink.settings.shared.role_of(target)
    collection = sink.target.collection(target)
    spent: dict[str, float] = {}
    clock = time.process_time()

    def lap(stage: str) -> None:
        nonlocal clock
        now = time.process_time()
        spent[stage] = now - clock
        clock = now

    states = sink.reader.read(read_scopes(role, batch))
    lap("read")
    plan = build_plan(target, role, batch, states)
    lap("plan")
    wanted = sorted(plan.updates)
    existing = sink.writer.existing_ids(collection, wanted) if wanted else set()
    lap("chroma get")
    present = [i for i in wanted if i in existing]
    for chunk in chunks(present, sink.writer.chunk_size):
        collection.update(ids=chunk, metadatas=[plan.updates[i] for i in chunk])
    lap("chroma update")
    return spent, len(present), sum(len(plan.updates[i]) for i in present)


def _reference(collection: Any, repeats: int) -> float:
    """Chroma's CPU seconds per embedding updating ``REFERENCE_IDS`` ids, spread over the
    collection in key order, in one call with the sink limit's patch (best of)."""
    every = collection.get(include=[])["ids"]
    ids = every[:: max(1, len(every) // REFERENCE_IDS)][:REFERENCE_IDS]
    best = float("inf")
    for n in range(repeats):
        changed = [text_patch(n) for _ in ids]
        began = time.process_time()
        collection.update(ids=ids, metadatas=changed)
        best = min(best, (time.process_time() - began) / len(ids))
    return best


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--receipts", type=int, default=100)
    parser.add_argument("--changes", type=int, default=600, help="changes per repeat")
    parser.add_argument("--batch", type=int, default=200, help="changes per task")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/7")
    args = parser.parse_args(argv)
    from tasks.config import WorkerSettings
    from tasks.sinks.chroma import ChromaSink

    with tempfile.TemporaryDirectory(prefix="apply-cpu-") as tmp:
        stack = ParallelTableStack.start_with(Path(tmp), args.redis_url)
        try:
            receipts = bench_receipts(args.receipts)
            stack.seed(receipts)
            env = {**os.environ, **stack.env, **stack.worker_env("dynalite")}
            sink = ChromaSink(WorkerSettings.from_env(env), target=stack.target)
            builder = WorkloadBuilder(receipts)
            best: dict[str, float] = {}
            embeddings, keys_per_embedding = 0, 0.0
            reference = float("inf")
            words = sink.target.collection(stack.settings.words_collection)
            for repeat in range(args.repeats):
                totals = dict.fromkeys(STAGES, 0.0)
                updated = keys_written = 0
                for target, changes in _changes(stack, builder, args.changes, f"r{repeat}").items():
                    sink.warm(target)
                    for start in range(0, len(changes), args.batch):
                        batch = changes[start : start + args.batch]
                        spent, n, keys = _stages(sink, target, batch)
                        updated += n
                        keys_written += keys
                        for stage, seconds in spent.items():
                            totals[stage] += seconds
                # The reference in the same repeat: this machine's noise hits both alike.
                reference = min(reference, 1e6 * _reference(words, 1))
                if not best or sum(totals.values()) < sum(best.values()):
                    best, embeddings, keys_per_embedding = totals, updated, keys_written / updated
            sink.reader.close()  # the target is the stack's, closed with it
        finally:
            stack.close()
    per = {stage: 1e6 * seconds / embeddings for stage, seconds in best.items()}
    print(
        f"{embeddings} embeddings from {args.changes} single-embedding changes, "
        f"batches of {args.batch}, best of {args.repeats}; CPU µs per embedding, and "
        f"against Chroma's update at {REFERENCE_IDS:,} ids per call ({reference:.1f} µs, "
        f"{len(text_patch(0))} keys each; the worker's patches: {keys_per_embedding:.1f} keys):"
    )
    for stage in STAGES:
        print(f"  {stage:<16}{per[stage]:>8.1f}  {per[stage] / reference:5.2f} ×")
    ours = per["read"] + per["plan"] + per["chroma get"]
    whole = sum(per.values())
    print(f"  {'read+plan+get':<16}{ours:>8.1f}  {ours / reference:5.2f} ×  (our code)")
    print(f"  {'all four':<16}{whole:>8.1f}  {whole / reference:5.2f} ×")


if __name__ == "__main__":
    main()
