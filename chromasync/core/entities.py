"""The entity registry: which table items chromasync cares about, as data.

Each :class:`EntitySpec` says how to recognise an entity by its sort key,
which attributes are monitored, which collections it affects and which
feature flag turns it off. Adding an entity type or a monitored field is one
entry in :data:`REGISTRY`; no other module branches on entity names to
recognise or route records.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from typing import Final, NamedTuple


class EntityType(StrEnum):
    RECEIPT_METADATA = "RECEIPT_METADATA"
    RECEIPT_WORD_LABEL = "RECEIPT_WORD_LABEL"
    RECEIPT_LINE = "RECEIPT_LINE"
    RECEIPT_WORD = "RECEIPT_WORD"
    RECEIPT = "RECEIPT"
    COMPACTION_RUN = "COMPACTION_RUN"


class CollectionRole(StrEnum):
    """Which of the two configured collections an entity touches."""

    LINES = "lines"
    WORDS = "words"


#: The partition key of every entity: ``IMAGE#{image_id}``.
PK_PATTERN: Final = re.compile(r"^IMAGE#(?P<image_id>[^#]+)$")

_RID = r"RECEIPT#(?P<receipt_id>\d{5})"
_LID = r"LINE#(?P<line_id>\d{5})"
_WID = r"WORD#(?P<word_id>\d{5})"

#: Fields of a line or a word that end up in its embedding's metadata.
TEXT_FIELDS: Final = ("text", "confidence", "bounding_box", "embedding_status", "is_noise")

#: Merchant fields copied onto every embedding of a receipt.
MERCHANT_FIELDS: Final = (
    "canonical_merchant_name",
    "merchant_name",
    "merchant_category",
    "address",
    "phone_number",
    "place_id",
)

#: Fields of a word label that feed the label summaries.
LABEL_FIELDS: Final = (
    "label",
    "reasoning",
    "validation_status",
    "label_proposed_by",
    "label_consolidated_from",
)


@dataclass(frozen=True)
class EntitySpec:
    entity_type: EntityType
    #: Matches the whole sort key; named groups become the change's keys.
    sk_pattern: re.Pattern[str]
    monitored_fields: tuple[str, ...]
    roles: tuple[CollectionRole, ...]
    #: Environment variable that disables this entity when false.
    flag: str
    #: True when every INSERT/MODIFY/REMOVE matters even with no monitored
    #: field (a receipt's REMOVE, a compaction run's INSERT).
    events_without_fields: frozenset[str] = frozenset()


REGISTRY: Final[tuple[EntitySpec, ...]] = (
    EntitySpec(
        EntityType.RECEIPT_METADATA,
        re.compile(rf"^{_RID}#METADATA$"),
        MERCHANT_FIELDS,
        (CollectionRole.LINES, CollectionRole.WORDS),
        "ENABLE_METADATA_UPDATES",
    ),
    EntitySpec(
        EntityType.RECEIPT_WORD_LABEL,
        re.compile(rf"^{_RID}#{_LID}#{_WID}#LABEL#(?P<label>[^#]+)$"),
        LABEL_FIELDS,
        (CollectionRole.WORDS, CollectionRole.LINES),
        "ENABLE_LABEL_UPDATES",
    ),
    EntitySpec(
        EntityType.RECEIPT_LINE,
        re.compile(rf"^{_RID}#{_LID}$"),
        TEXT_FIELDS,
        (CollectionRole.LINES,),
        "ENABLE_LINE_UPDATES",
    ),
    EntitySpec(
        EntityType.RECEIPT_WORD,
        re.compile(rf"^{_RID}#{_LID}#{_WID}$"),
        TEXT_FIELDS,
        (CollectionRole.WORDS,),
        "ENABLE_WORD_UPDATES",
    ),
    EntitySpec(
        EntityType.RECEIPT,
        re.compile(rf"^{_RID}$"),
        (),
        (CollectionRole.LINES, CollectionRole.WORDS),
        "ENABLE_RECEIPT_DELETES",
        events_without_fields=frozenset({"REMOVE"}),
    ),
    EntitySpec(
        EntityType.COMPACTION_RUN,
        re.compile(rf"^{_RID}#COMPACTION_RUN#(?P<run_id>[^#]+)$"),
        (),
        (CollectionRole.LINES, CollectionRole.WORDS),
        "ENABLE_COMPACTION_RUNS",
        events_without_fields=frozenset({"INSERT"}),
    ),
)

SPECS_BY_TYPE: Final = {spec.entity_type: spec for spec in REGISTRY}

#: Key fields that hold 5-digit numbers in the sort key and ints in a change.
INT_KEY_FIELDS: Final = frozenset({"receipt_id", "line_id", "word_id"})


class RecognisedKey(NamedTuple):
    """An item's entity and its keys (a tuple: one is made for every key read)."""

    spec: EntitySpec
    keys: dict[str, str | int]


def _separators(spec: EntitySpec) -> int:
    """How many ``#`` a sort key of this entity holds: its pattern's literal ones
    (names are ``[^#]+``, which holds no separator)."""
    return spec.sk_pattern.pattern.replace("[^#]", "").count("#")


#: The registry's entries by the number of ``#`` in their sort keys: a key is tried
#: against the one or two entries of its shape, not all six (the producer and the
#: worker recognise every key they see).
_SPECS_BY_SEPARATORS: Final[dict[int, tuple[EntitySpec, ...]]] = {
    count: tuple(spec for spec in REGISTRY if _separators(spec) == count)
    for count in {_separators(spec) for spec in REGISTRY}
}


def recognise(pk: str, sk: str) -> RecognisedKey | None:
    """Return the entity and its keys for an item's PK/SK, or None if not ours."""
    pk_match = PK_PATTERN.match(pk)
    if pk_match is None:
        return None
    for spec in _SPECS_BY_SEPARATORS.get(sk.count("#"), ()):
        sk_match = spec.sk_pattern.match(sk)
        if sk_match is None:
            continue
        keys: dict[str, str | int] = {"image_id": pk_match.group("image_id")}
        for name, value in sk_match.groupdict().items():
            keys[name] = int(value) if name in INT_KEY_FIELDS else value
        return RecognisedKey(spec, keys)
    return None


#: Parts of a strict sort-key pattern that a *loose* pattern accepts as any
#: text between two ``#``: five-digit ids and non-empty names.
_STRICT_PARTS: Final = (r"\d{5}", r"[^#]+")
_LOOSE_PART: Final = r"[^#]*"


def _loosen(pattern: re.Pattern[str]) -> re.Pattern[str]:
    source = pattern.pattern
    for part in _STRICT_PARTS:
        source = source.replace(part, _LOOSE_PART)
    return re.compile(source)


#: Each entity's sort-key shape with its ids left unchecked, derived from the
#: registry (so a new entry needs nothing here).
_LOOSE_PATTERNS: Final = tuple((spec, _loosen(spec.sk_pattern)) for spec in REGISTRY)


def resembles(pk: str, sk: str) -> EntitySpec | None:
    """The entity whose key *shape* ``pk``/``sk`` has, even if its ids are unreadable.

    :func:`recognise` returns None both for items that are not ours (other
    entity types share the table) and for keys of our shape with a broken id
    (``RECEIPT#abc#LINE#00001``, ``RECEIPT#1``, an empty label). Only the
    second kind is a malformed record worth a person's attention; this tells
    them apart.
    """
    if PK_PATTERN.match(pk) is None:
        return None
    for spec, loose in _LOOSE_PATTERNS:
        if loose.match(sk):
            return spec
    return None


def receipt_sk(receipt_id: int) -> str:
    return f"RECEIPT#{receipt_id:05d}"


def line_sk(receipt_id: int, line_id: int) -> str:
    return f"{receipt_sk(receipt_id)}#LINE#{line_id:05d}"


def word_sk(receipt_id: int, line_id: int, word_id: int) -> str:
    return f"{line_sk(receipt_id, line_id)}#WORD#{word_id:05d}"


def image_pk(image_id: str) -> str:
    return f"IMAGE#{image_id}"


def line_embedding_id(image_id: str, receipt_id: int, line_id: int) -> str:
    """The Chroma id of a line's embedding."""
    return f"{image_pk(image_id)}#{line_sk(receipt_id, line_id)}"


def word_embedding_id(image_id: str, receipt_id: int, line_id: int, word_id: int) -> str:
    """The Chroma id of a word's embedding."""
    return f"{image_pk(image_id)}#{word_sk(receipt_id, line_id, word_id)}"
