"""The keys of the table's items: partition and sort keys, their templates, embedding ids.

Every item of a receipt lives under ``PK=IMAGE#{image_id}`` with a sort key that
starts ``RECEIPT#{receipt_id:05d}``; an entity's sort key is a template whose
fields are the keys its changes carry (:class:`chromasync.core.entities.EntitySpec`).
"""

from __future__ import annotations

import re
import string
from typing import Final

#: ``CreateTable`` key arguments of a table keyed as ours: ``PK`` (hash) and ``SK`` (range),
#: both strings. The source table and the dashboard table share it; each adds the rest.
PK_SK_KEYS: Final[dict[str, list[dict[str, str]]]] = {
    "KeySchema": [
        {"AttributeName": "PK", "KeyType": "HASH"},
        {"AttributeName": "SK", "KeyType": "RANGE"},
    ],
    "AttributeDefinitions": [
        {"AttributeName": "PK", "AttributeType": "S"},
        {"AttributeName": "SK", "AttributeType": "S"},
    ],
}
#: The partition key of every entity: ``IMAGE#{image_id}``.
PK_PATTERN: Final = re.compile(r"^IMAGE#(?P<image_id>[^#]+)$")
#: Every sort key starts with its receipt's, so one Query reads a whole receipt.
RECEIPT_TEMPLATE: Final = "RECEIPT#{receipt_id:05d}"
#: Keys every change carries (the receipt's); an entity's template adds its own.
RECEIPT_KEYS: Final = ("image_id", "receipt_id")
#: The keys a template may use, with the type a change carries them as. A new key
#: name is a change of the contract (``chromasync.core.contract.ChangeKeys``).
KEY_NAMES: Final = ("image_id", "receipt_id", "line_id", "word_id", "label", "run_id")

#: The two kinds of template field: ``{line_id:05d}`` (a five-digit number, an int in a
#: change) and ``{label}`` (a name: any text without ``#``).
_FIELD_KINDS: Final = {"05d": "number", "": "name"}


def template_parts(template: str) -> list[tuple[str, str]]:
    """The template's parts in order: ``(text, "literal")`` or ``(key, "number"|"name")``."""
    parts: list[tuple[str, str]] = []
    for literal, name, spec, _conversion in string.Formatter().parse(template):
        if literal:
            parts.append((literal, "literal"))
        if name is not None:
            if spec not in _FIELD_KINDS or name not in KEY_NAMES:
                raise ValueError(f"template {template!r}: unsupported field {{{name}:{spec}}}")
            parts.append((name, _FIELD_KINDS[spec]))
    return parts


def template_pattern(template: str, number: str, name: str) -> re.Pattern[str]:
    """The template as a regular expression whose named groups are its keys."""
    source = ""
    for text, kind in template_parts(template):
        if kind == "literal":
            source += re.escape(text)
        else:
            source += f"(?P<{text}>{number if kind == 'number' else name})"
    return re.compile(f"^{source}$")


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
