"""Upserting a downloaded delta into its target collection, and checking every id arrived.

Upserts are idempotent, so a merge interrupted half-way (a lost lease, a
crash) is simply done again on redelivery. The lease is checked before every
upsert: a worker that lost it stops before its next write.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from tasks.chroma.persistent import open_directory
from tasks.chroma.target import chunks
from tasks.deltas.errors import DeltaIncomplete, InvalidDelta
from tasks.sinks.backend import LeaseCheck

log = logging.getLogger(__name__)


def merge_directory(
    root: Path,
    collection: Any,
    source: str,
    check_lease: LeaseCheck,
    keep: frozenset[str] | None,
    batch_size: int,
) -> int:
    """Upsert the delta at ``root`` into ``collection`` in pages; return the ids merged.

    ``keep``: merge only these of the delta's ids; None merges every id.
    """
    try:
        client = open_directory(root)
    except Exception as exc:
        raise InvalidDelta(f"cannot open {source} as a Chroma directory: {exc}") from exc
    try:
        delta = _delta_collection(client, collection.name, source)
        # Ids first, then pages by id: paging by id does not depend on an
        # offset order, and the ids are needed again for the check.
        ids = _kept(list(delta.get(include=[])["ids"]), keep, source)
        for page_ids in chunks(ids, batch_size):
            page = delta.get(ids=page_ids, include=["embeddings", "metadatas", "documents"])
            check_lease()
            collection.upsert(
                ids=page["ids"],
                embeddings=page["embeddings"],
                metadatas=page["metadatas"],
                documents=page["documents"],
            )
        _verify(collection, ids, source, batch_size)
        return len(ids)
    finally:
        client.close()


def _kept(ids: list[str], keep: frozenset[str] | None, source: str) -> list[str]:
    """The ids still wanted: the table may have lost lines or words since the delta was made."""
    if keep is None:
        return ids
    gone = [i for i in ids if i not in keep]
    if not gone:
        return ids
    log.info(
        "%s: %d of its %d embeddings belong to lines or words the table no "
        "longer holds; not merged (first: %s)",
        source,
        len(gone),
        len(ids),
        gone[:3],
    )
    return [i for i in ids if i in keep]


def _delta_collection(client: Any, name: str, source: str) -> Any:
    """The delta's collection named like the target, else its only one."""
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


def _verify(collection: Any, ids: list[str], source: str, batch_size: int) -> None:
    missing: list[str] = []
    for chunk in chunks(ids, batch_size):
        arrived = set(collection.get(ids=chunk, include=[])["ids"])
        missing.extend(i for i in chunk if i not in arrived)
    if missing:
        raise DeltaIncomplete(
            f"{len(missing)} of {len(ids)} ids from {source} are not in "
            f"{collection.name} after the merge (first: {missing[:5]})"
        )
