"""The worker's table reads alone, CPU only: boto3's client against the worker's read client.

Run ``python -m benchmarks.read_cpu``: it starts moto, writes the bench's receipts,
and reads them as a worker's batches do (:meth:`tasks.sources.TableReader.read`):
every receipt whole (merchant edits, delta merges), and every receipt's labels
plus some of its lines and words (single-embedding changes). It prints this
process's CPU per item read with a plain ``boto3.client("dynamodb")`` and with
:func:`tasks.dynamo_reads.read_client`, best of ``--repeats``, interleaved; moto's
own CPU is not counted. This is the figure behind the reader's client in
BENCHMARKS.md ("CPU per embedding").
"""

from __future__ import annotations

import argparse
import time
from typing import Any

from benchmarks.workload import bench_receipts
from chromasync.core.config import AwsSettings, Settings
from chromasync.core.keys import line_sk, word_sk
from chromasync.local import MotoServer
from chromasync.provision import ensure_table
from chromasync.seed import ReceiptSpec, table_items
from tasks.dynamo_reads import read_client
from tasks.sources import ReadScope, ReceiptKey, TableReader

TABLE = "read-cpu"


def scopes_of(receipts: list[ReceiptSpec]) -> dict[str, dict[ReceiptKey, ReadScope]]:
    """Three kinds of batch: whole receipts, labels plus a few items of each, and one
    word's labels per receipt (a label change's read: one Query each)."""
    partial, one_word = {}, {}
    for spec in receipts:
        rid = spec.receipt_id
        items = {line_sk(rid, lid) for lid in spec.line_ids()[:3]}
        items |= {word_sk(rid, lid, wid) for lid, wid in spec.word_keys()[:3]}
        labels = {word_sk(rid, lid, wid) + "#" for lid, wid in spec.word_keys()[:4]}
        partial[(spec.image_id, rid)] = ReadScope(items=frozenset(items), labels=frozenset(labels))
        one_word[(spec.image_id, rid)] = ReadScope(labels=frozenset(sorted(labels)[:1]))
    whole = {(s.image_id, s.receipt_id): ReadScope(whole=True) for s in receipts}
    return {"whole receipts": whole, "labels and items": partial, "one word's labels": one_word}


def _items(states: dict[ReceiptKey, Any]) -> int:
    return sum(len(items) for state in states.values() for items in state.items.values())


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--receipts", type=int, default=30)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    server = MotoServer.start()
    try:
        env = server.client_env()
        aws = AwsSettings(
            endpoint_url=server.url,
            region=env["AWS_DEFAULT_REGION"],
            access_key_id=env["AWS_ACCESS_KEY_ID"],
            secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
        )
        import boto3

        plain = boto3.client("dynamodb", **aws.client_kwargs())
        ensure_table(Settings.from_env({"CHROMASYNC_TABLE": TABLE}), client=plain)
        receipts = bench_receipts(args.receipts)
        table = boto3.resource("dynamodb", **aws.client_kwargs()).Table(TABLE)
        with table.batch_writer() as batch:
            for index, spec in enumerate(receipts):
                for item in table_items(spec, index):
                    batch.put_item(Item=item)
        readers = {
            "boto3 client": TableReader(aws, TABLE, plain),
            "read_client": TableReader(aws, TABLE, read_client(aws)),
        }
        for kind, scopes in scopes_of(receipts).items():
            best: dict[str, float] = {}
            items = 0
            for _ in range(args.repeats):
                for name, reader in readers.items():
                    began = time.process_time()
                    items = _items(reader.read(scopes))
                    spent = time.process_time() - began
                    best[name] = min(best.get(name, spent), spent)
            cells = ", ".join(f"{name} {1e6 * s / items:.1f}" for name, s in best.items())
            per_receipt = ", ".join(
                f"{name} {1e6 * s / len(scopes):.0f}" for name, s in best.items()
            )
            ratio = best["read_client"] / best["boto3 client"]
            print(
                f"{kind}: {items} items, CPU µs per item read: {cells} ({ratio:.2f}x); "
                f"per receipt: {per_receipt}"
            )
    finally:
        server.stop()


if __name__ == "__main__":
    main()
