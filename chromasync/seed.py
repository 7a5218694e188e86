"""Deterministic receipts for the demo, the tests and the benchmarks.

A receipt here is what the real table holds: the RECEIPT item, its
RECEIPT_METADATA, its lines and words, and some word labels; plus one
embedding per line (``lines``) and per word (``words``) in Chroma with
deterministic vectors (no model is ever loaded).
"""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from chromasync.core.keys import (
    image_pk,
    line_embedding_id,
    line_sk,
    receipt_sk,
    word_embedding_id,
    word_sk,
)
from tasks.chroma.target import ChromaTarget, chunks

#: Length of the deterministic embedding vectors.
VECTOR_DIMENSIONS = 16

MERCHANTS = (
    ("Blue Bottle Coffee", "cafe"),
    ("Trader Joe's", "grocery"),
    ("Shell", "gas_station"),
    ("Walgreens", "pharmacy"),
    ("Home Depot", "hardware"),
    ("Chipotle", "restaurant"),
)


def vector(key: str) -> list[float]:
    """A stable pseudo-embedding derived from the id (unit-free, deterministic)."""
    digest = hashlib.sha256(key.encode()).digest() * 2
    values = struct.unpack(f"<{VECTOR_DIMENSIONS}H", digest[: VECTOR_DIMENSIONS * 2])
    return [v / 65535.0 for v in values]


@dataclass(frozen=True)
class ReceiptSpec:
    image_id: str
    receipt_id: int
    lines: int
    words_per_line: int

    def line_ids(self) -> list[int]:
        return list(range(1, self.lines + 1))

    def word_keys(self) -> list[tuple[int, int]]:
        return [(lid, wid) for lid in self.line_ids() for wid in range(1, self.words_per_line + 1)]


def demo_receipts(count: int, lines: int = 6, words_per_line: int = 4) -> list[ReceiptSpec]:
    return [
        ReceiptSpec(f"00000000-0000-4000-8000-{i:012d}", 1 + i % 3, lines, words_per_line)
        for i in range(count)
    ]


def merchant_fields(index: int, edition: int = 0) -> dict[str, str]:
    name, category = MERCHANTS[index % len(MERCHANTS)]
    suffix = f" #{edition}" if edition else ""
    return {
        "canonical_merchant_name": f"{name}{suffix}",
        "merchant_name": f"{name.upper()}{suffix}",
        "merchant_category": category,
        "address": f"{100 + index} Market St{suffix}, San Francisco, CA",
        "phone_number": f"(415) 555-{1000 + index + edition:04d}",
        "place_id": f"place-{index}-{edition}",
    }


def text_item(pk: str, sk: str, text: str, kind: str) -> dict[str, Any]:
    """A RECEIPT_LINE or RECEIPT_WORD item with every monitored field."""
    return {
        "PK": pk,
        "SK": sk,
        "TYPE": kind,
        "text": text,
        "confidence": Decimal("0.97"),
        "bounding_box": {
            "x": Decimal("0.1"),
            "y": Decimal("0.2"),
            "width": Decimal("0.3"),
            "height": Decimal("0.04"),
        },
        "embedding_status": "SUCCESS",
        "is_noise": False,
    }


def table_items(spec: ReceiptSpec, index: int) -> list[dict[str, Any]]:
    """Every table item of one receipt (boto3 resource form: Decimals, dicts)."""
    pk = image_pk(spec.image_id)
    rid = spec.receipt_id
    items: list[dict[str, Any]] = [
        {
            "PK": pk,
            "SK": receipt_sk(rid),
            "TYPE": "RECEIPT",
            "width": 1000,
            "height": 2000,
            # The day the receipts dashboard files it under (nine days, round robin).
            "timestamp_added": f"2026-01-0{1 + index % 9}T12:00:00+00:00",
        },
        {
            "PK": pk,
            "SK": f"{receipt_sk(rid)}#METADATA",
            "TYPE": "RECEIPT_METADATA",
            **merchant_fields(index),
        },
    ]
    for lid in spec.line_ids():
        items.append(
            text_item(pk, line_sk(rid, lid), f"line {lid} of receipt {rid}", "RECEIPT_LINE")
        )
    for lid, wid in spec.word_keys():
        items.append(text_item(pk, word_sk(rid, lid, wid), f"w{lid}.{wid}", "RECEIPT_WORD"))
    # One label on the first word of every line; the first is validated.
    for lid in spec.line_ids():
        items.append(
            {
                "PK": pk,
                "SK": f"{word_sk(rid, lid, 1)}#LABEL#PRODUCT_NAME",
                "TYPE": "RECEIPT_WORD_LABEL",
                "label": "PRODUCT_NAME",
                "reasoning": "seeded",
                "validation_status": "VALID" if lid == 1 else "PENDING",
                "label_proposed_by": "seed",
                "timestamp_added": "2026-01-01T00:00:00+00:00",
            }
        )
    return items


def embedding_records(
    spec: ReceiptSpec, index: int, collection_role: str
) -> list[tuple[str, list[float], dict[str, Any]]]:
    """(id, vector, metadata) of every embedding of a receipt in one collection."""
    merchant = merchant_fields(index)
    base = {"image_id": spec.image_id, "receipt_id": spec.receipt_id, **merchant}
    out = []
    if collection_role == "lines":
        for lid in spec.line_ids():
            eid = line_embedding_id(spec.image_id, spec.receipt_id, lid)
            out.append((eid, vector(eid), {**base, "line_id": lid, "text": f"line {lid}"}))
    else:
        for lid, wid in spec.word_keys():
            eid = word_embedding_id(spec.image_id, spec.receipt_id, lid, wid)
            out.append(
                (
                    eid,
                    vector(eid),
                    {**base, "line_id": lid, "word_id": wid, "text": f"w{lid}.{wid}"},
                )
            )
    return out


def seed_table(table: Any, receipts: list[ReceiptSpec]) -> int:
    """Write every item of the receipts with a boto3 Table resource; returns items written."""
    written = 0
    with table.batch_writer() as batch:
        for index, spec in enumerate(receipts):
            for item in table_items(spec, index):
                batch.put_item(Item=item)
                written += 1
    return written


def seed_chroma(
    target: ChromaTarget, collection: str, role: str, receipts: list[ReceiptSpec]
) -> int:
    """Add the receipts' embeddings to one collection; returns embeddings added."""
    records = [r for i, spec in enumerate(receipts) for r in embedding_records(spec, i, role)]
    col = target.collection(collection)
    with target.writing(collection):
        for chunk in chunks(records, target.max_batch_size):
            col.upsert(
                ids=[r[0] for r in chunk],
                embeddings=[r[1] for r in chunk],
                metadatas=[r[2] for r in chunk],
            )
    return len(records)


def delta_tarball(collection: str, records: list[tuple[str, list[float], dict[str, Any]]]) -> bytes:
    """``delta.tar.gz`` of a Chroma directory holding ``records``, as an embedding job uploads."""
    import io
    import tarfile
    import tempfile

    from tasks.chroma.persistent import open_directory

    with tempfile.TemporaryDirectory(prefix="chromasync-delta-") as directory:
        client = open_directory(directory)
        col = client.get_or_create_collection(name=collection, embedding_function=None)
        for chunk in chunks(records, 5000):
            col.add(
                ids=[r[0] for r in chunk],
                embeddings=[r[1] for r in chunk],
                metadatas=[r[2] for r in chunk],
            )
        client.close()
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
            archive.add(directory, arcname=".")
        return buffer.getvalue()


def upload_deltas(
    s3: Any, bucket: str, spec: ReceiptSpec, index: int, run_id: str, collections: dict[str, str]
) -> dict[str, str]:
    """Put a receipt's delta for each collection in S3, as an embedding job does first.

    ``collections`` maps role (``lines``/``words``) to collection name; returns
    each role's delta prefix (``s3://bucket/deltas/{run_id}/{role}/``).
    """
    prefixes: dict[str, str] = {}
    for role, name in collections.items():
        key = f"deltas/{run_id}/{role}/"
        body = delta_tarball(name, embedding_records(spec, index, role))
        s3.put_object(Bucket=bucket, Key=f"{key}delta.tar.gz", Body=body)
        prefixes[role] = f"s3://{bucket}/{key}"
    return prefixes


def publish_run(
    s3: Any,
    table: Any,
    bucket: str,
    spec: ReceiptSpec,
    index: int,
    run_id: str,
    collections: dict[str, str],
) -> None:
    """Upload a receipt's deltas for both collections, then INSERT its COMPACTION_RUN item.

    ``collections`` maps role (``lines``/``words``) to collection name.
    """
    prefixes = upload_deltas(s3, bucket, spec, index, run_id, collections)
    attributes = {f"{role}_delta_prefix": prefix for role, prefix in prefixes.items()}
    table.put_item(
        Item={
            "PK": image_pk(spec.image_id),
            "SK": f"{receipt_sk(spec.receipt_id)}#COMPACTION_RUN#{run_id}",
            "TYPE": "COMPACTION_RUN",
            **attributes,
        }
    )
