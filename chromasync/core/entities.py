"""The entity registry: which table items chromasync cares about, and what they mean, as data.

Each :class:`EntitySpec` is one entity: its sort-key template (whose fields
are the keys its changes carry), the attributes monitored, the collections it
affects, the :class:`Effect` its changes have on them, and the feature flag
that turns it off. Everything else is derived from :data:`REGISTRY`: the
producer's recognition and routing, the contract's per-entity checks, what
the worker reads and writes, and what ``verify`` expects. Adding an entity
whose changes act as one of the effects is one entry; a new kind of effect
is one new :class:`Effect` and its implementation in ``tasks.effects``.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Final, NamedTuple

from chromasync.core.keys import (
    PK_PATTERN,
    RECEIPT_KEYS,
    RECEIPT_TEMPLATE,
    template_parts,
    template_pattern,
)


class EntityType(StrEnum):
    """The built-in entities' names (an entry of :data:`REGISTRY` may add others)."""

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


class Effect(StrEnum):
    """What an entity's change does to its receipt's embeddings (``tasks.effects`` applies it).

    The worker always writes the table's *current* state, so each effect is
    stated in terms of the items the table holds now, not of the change.
    """

    #: The item *is* an embedding (a line, a word): its monitored fields are that
    #: embedding's metadata; once the item is gone, the embedding is deleted.
    EMBEDDED = "embedded"
    #: One item per receipt whose monitored fields go onto every embedding of the
    #: receipt (the merchant metadata); once it is gone, they are cleared.
    RECEIPT_FIELDS = "receipt_fields"
    #: A label of an embedded item: the label summary of every embedding whose
    #: keys its keys start with (a word's labels summarise onto the word and its line).
    LABELS = "labels"
    #: The receipt itself: once it is gone, every embedding of the receipt is deleted.
    RECEIPT = "receipt"
    #: A compaction run: its INSERT merges the run's delta into the collection.
    DELTA = "delta"


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


def _getter(keys: Any) -> Callable[[str], Any]:
    """Reads a key by name from a mapping of keys or an object holding them (``ChangeKeys``)."""
    if isinstance(keys, dict):
        return keys.get
    return lambda name: getattr(keys, name)


@dataclass(frozen=True)
class EntitySpec:
    """One entity of the table, all that any part of chromasync needs to know of it."""

    #: The entity's name (an :class:`EntityType` for the built-in ones).
    entity_type: str
    #: Its sort key, as a template whose fields are the change's keys beyond ``image_id``.
    sk_template: str
    monitored_fields: tuple[str, ...]
    roles: tuple[CollectionRole, ...]
    effect: Effect
    #: Environment variable that disables this entity when false.
    flag: str
    #: Events that matter even with no monitored field changed (a receipt's
    #: REMOVE, a compaction run's INSERT); others need a monitored field to change.
    events_without_fields: frozenset[str] = frozenset()
    #: Matches the whole sort key; named groups become the change's keys (derived).
    sk_pattern: re.Pattern[str] = field(init=False, repr=False, compare=False)
    #: The same shape with ids left unchecked (derived; see :func:`resembles`).
    loose_pattern: re.Pattern[str] = field(init=False, repr=False, compare=False)
    #: Every key a change of this entity must carry, ``image_id`` first (derived).
    keys: tuple[str, ...] = field(init=False, compare=False)
    #: The keys beyond the receipt's, in template order: an item's key in its receipt.
    item_keys: tuple[str, ...] = field(init=False, compare=False)
    #: Keys held as five-digit numbers in the sort key and as ints in a change (derived).
    int_keys: frozenset[str] = field(init=False, compare=False)

    def __post_init__(self) -> None:
        if not self.sk_template.startswith(RECEIPT_TEMPLATE):
            raise ValueError(f"{self.entity_type}: its sort key must start {RECEIPT_TEMPLATE!r}")
        parts = template_parts(self.sk_template)
        names = [text for text, kind in parts if kind != "literal"]
        set_ = object.__setattr__
        set_(self, "sk_pattern", template_pattern(self.sk_template, r"\d{5}", r"[^#]+"))
        set_(self, "loose_pattern", template_pattern(self.sk_template, r"[^#]*", r"[^#]*"))
        set_(self, "keys", ("image_id", *names))
        set_(self, "item_keys", tuple(n for n in names if n not in RECEIPT_KEYS))
        set_(self, "int_keys", frozenset(text for text, kind in parts if kind == "number"))
        if self.effect is Effect.EMBEDDED and len(self.roles) != 1:
            raise ValueError(f"{self.entity_type}: an embedded item lives in one collection")
        if self.effect in (Effect.RECEIPT_FIELDS, Effect.RECEIPT) and self.item_keys:
            raise ValueError(f"{self.entity_type}: one item per receipt has no keys of its own")

    def sk(self, keys: Any) -> str:
        """The sort key of the item with these keys (a mapping or an object with them)."""
        get = _getter(keys)
        return self.sk_template.format(**{name: get(name) for name in self.keys[1:]})

    def embedding_id(self, keys: Any) -> str:
        """The Chroma id of the item's embedding: ``IMAGE#{image_id}#`` and its sort key."""
        get = _getter(keys)
        return f"IMAGE#{get('image_id')}#{self.sk(keys)}"

    def item_key(self, keys: Any) -> tuple[Any, ...]:
        """The item's key within its receipt (``(line_id, word_id)`` for a word)."""
        get = _getter(keys)
        return tuple(get(name) for name in self.item_keys)

    def keys_of(self, image_id: str, receipt_id: int, item_key: tuple[Any, ...]) -> dict[str, Any]:
        """The change keys of the item at ``item_key`` of a receipt."""
        own = dict(zip(self.item_keys, item_key, strict=True))
        return {"image_id": image_id, "receipt_id": receipt_id, **own}


_LINES_AND_WORDS: Final = (CollectionRole.LINES, CollectionRole.WORDS)

#: Every entity chromasync follows, one entry each.
REGISTRY: Final[tuple[EntitySpec, ...]] = (
    EntitySpec(
        EntityType.RECEIPT_METADATA,
        "RECEIPT#{receipt_id:05d}#METADATA",
        MERCHANT_FIELDS,
        _LINES_AND_WORDS,
        Effect.RECEIPT_FIELDS,
        "ENABLE_METADATA_UPDATES",
    ),
    EntitySpec(
        EntityType.RECEIPT_WORD_LABEL,
        "RECEIPT#{receipt_id:05d}#LINE#{line_id:05d}#WORD#{word_id:05d}#LABEL#{label}",
        LABEL_FIELDS,
        (CollectionRole.WORDS, CollectionRole.LINES),
        Effect.LABELS,
        "ENABLE_LABEL_UPDATES",
    ),
    EntitySpec(
        EntityType.RECEIPT_LINE,
        "RECEIPT#{receipt_id:05d}#LINE#{line_id:05d}",
        TEXT_FIELDS,
        (CollectionRole.LINES,),
        Effect.EMBEDDED,
        "ENABLE_LINE_UPDATES",
    ),
    EntitySpec(
        EntityType.RECEIPT_WORD,
        "RECEIPT#{receipt_id:05d}#LINE#{line_id:05d}#WORD#{word_id:05d}",
        TEXT_FIELDS,
        (CollectionRole.WORDS,),
        Effect.EMBEDDED,
        "ENABLE_WORD_UPDATES",
    ),
    EntitySpec(
        EntityType.RECEIPT,
        "RECEIPT#{receipt_id:05d}",
        (),
        _LINES_AND_WORDS,
        Effect.RECEIPT,
        "ENABLE_RECEIPT_DELETES",
        events_without_fields=frozenset({"REMOVE"}),
    ),
    EntitySpec(
        EntityType.COMPACTION_RUN,
        "RECEIPT#{receipt_id:05d}#COMPACTION_RUN#{run_id}",
        (),
        _LINES_AND_WORDS,
        Effect.DELTA,
        "ENABLE_COMPACTION_RUNS",
        events_without_fields=frozenset({"INSERT"}),
    ),
)

#: Each entry by its entity's name.
SPECS_BY_TYPE: Final[dict[str, EntitySpec]] = {spec.entity_type: spec for spec in REGISTRY}


@functools.cache
def specs_with(effect: Effect, role: CollectionRole | None = None) -> tuple[EntitySpec, ...]:
    """The entries of one effect (and touching ``role``, when given), in registry order.

    Cached: the registry is fixed at import, and effects ask for every change.
    """
    return tuple(
        spec for spec in REGISTRY if spec.effect is effect and (role is None or role in spec.roles)
    )


class RecognisedKey(NamedTuple):
    """An item's entity and its keys (a tuple: one is made for every key read)."""

    spec: EntitySpec
    keys: dict[str, str | int]


def _separators(spec: EntitySpec) -> int:
    """How many ``#`` a sort key of this entity holds (its keys hold none)."""
    return spec.sk_template.count("#")


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
            keys[name] = int(value) if name in spec.int_keys else value
        return RecognisedKey(spec, keys)
    return None


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
    for spec in REGISTRY:
        if spec.loose_pattern.match(sk):
            return spec
    return None
