"""Adding an entity is one entry in the registry: a toy entity, routed, applied and verified.

The test copies the source tree, adds one entry to ``REGISTRY`` in the copy's
``chromasync/core/entities.py`` and nothing else, then runs the whole pipeline
from the copy (tests/toy/run_toy.py): a RECEIPT_NOTE item written to the table
reaches every embedding of its receipt in both collections through the stream,
the poller and the workers; ``verify`` finds it clean, finds a tampered note and
repairs it with a change of the new entity; the item's REMOVE clears the note.
"""

from __future__ import annotations

import os
from pathlib import Path

from chromasync.core.entities import recognise
from tests.toy import run_in_tree, tree_with_entry

#: The whole addition: one entry, written as a developer would.
TOY_ENTRY = """    EntitySpec(
        "RECEIPT_NOTE",
        "RECEIPT#{receipt_id:05d}#NOTE",
        ("note",),
        _LINES_AND_WORDS,
        Effect.RECEIPT_FIELDS,
        "ENABLE_NOTE_UPDATES",
    ),
"""
REGISTRY_START = "REGISTRY: Final[tuple[EntitySpec, ...]] = (\n"


def _tree_with_toy(tmp_path: Path) -> Path:
    return tree_with_entry(tmp_path, "chromasync/core/entities.py", REGISTRY_START, TOY_ENTRY)


def test_a_toy_entity_added_in_one_entry_is_routed_applied_and_verified(
    stack_env: dict[str, str], tmp_path: Path
) -> None:
    # Not ours before the entry: the item would be ignored (this test's control).
    assert recognise("IMAGE#x", "RECEIPT#00001#NOTE") is None
    tree = _tree_with_toy(tmp_path)
    seen = run_in_tree(tree, "run_toy.py", stack_env, tmp_path / "logs")
    lines, words = stack_env.get("CHROMASYNC_COLLECTIONS", "lines,words").split(",")
    assert seen["registry"] == str(tree / "chromasync" / "core" / "entities.py")
    # Routed to both collections and applied to every embedding of the receipt.
    assert seen["applied"] == {lines: ["handwritten: keep"] * 2, words: ["handwritten: keep"] * 4}
    assert seen["clean_after_apply"] is True
    # Verified: the tampered note is drift of the note field, repaired by a RECEIPT_NOTE change.
    assert [kind for _c, kind, _f in seen["drift"]] == ["metadata"]
    assert seen["drift"][0][2] == ["note"]
    assert seen["repairs"] == [[words, [["RECEIPT_NOTE", "MODIFY"]]]]
    assert seen["clean_after_repair"] is True
    # The item's REMOVE clears the note everywhere.
    assert seen["removed"] == {lines: [None] * 2, words: [None] * 4}
    assert seen["clean_after_remove"] is True
    assert os.path.isdir(tmp_path / "logs")
