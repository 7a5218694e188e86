"""Copy the IAM policies of deploy/iam/*.json into deploy/cloudformation.yaml (``make cfn``).

The JSON files are the source of truth: they are what tests/test_iam_policies.py
proves against IAM enforcement, and they use CloudFormation's ``${...}``
placeholders already. The template carries the same statements, each string
that holds a placeholder written as ``!Sub``. Editing the policies by hand in
two places would let them drift, so the template marks where each one goes::

          # BEGIN deploy/iam/worker.json (make cfn writes this block; edit the JSON)
          ...
          # END deploy/iam/worker.json

and this script rewrites every such block from its file, at the marker's
indentation. ``--check`` changes nothing and exits 1 when the template is not
what rendering would write (tests/test_cloudformation.py also compares the
loaded documents, whatever wrote them). Standard library only.

    python deploy/render.py [--check] [--template deploy/cloudformation.yaml]
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

#: The repository's root (this file is deploy/render.py).
ROOT = Path(__file__).resolve().parent.parent
#: The template rendered by default.
TEMPLATE = ROOT / "deploy" / "cloudformation.yaml"
#: ``# BEGIN <path>`` ... ``# END <path>``: a rendered block; <path> is relative to ROOT.
BLOCK = re.compile(
    r"^(?P<indent>[ ]*)# BEGIN (?P<path>\S+)(?P<note>[^\n]*)\n"
    r"(?P<body>.*?)"
    r"^(?P=indent)# END (?P=path)[ ]*$",
    re.M | re.S,
)
#: A mapping key written without quotes; anything else (``ForAllValues:StringEquals``) is quoted.
PLAIN_KEY = re.compile(r"[A-Za-z0-9_]+")
#: What marks a string for ``!Sub``.
PLACEHOLDER = "${"


def scalar(value: Any) -> str:
    """One YAML scalar: a JSON string literal is valid YAML; a placeholder makes it ``!Sub``."""
    if isinstance(value, str):
        text = json.dumps(value)
        return f"!Sub {text}" if PLACEHOLDER in value else text
    if isinstance(value, bool) or value is None or isinstance(value, int | float):
        return json.dumps(value)
    raise TypeError(f"not a scalar: {value!r}")


def key(name: str) -> str:
    return name if PLAIN_KEY.fullmatch(name) else json.dumps(name)


def _is_scalar(value: Any) -> bool:
    return not isinstance(value, dict | list)


def _flow(values: list[Any]) -> str | None:
    """``[a, b]`` for a short list of strings without placeholders (Action lists), else None."""
    if all(isinstance(v, str) and PLACEHOLDER not in v for v in values):
        text = "[" + ", ".join(json.dumps(v) for v in values) + "]"
        if len(text) <= 72:
            return text
    return None


def block(value: Any, indent: int) -> list[str]:
    """Block-style YAML lines of a mapping or sequence, ``indent`` spaces in."""
    pad = " " * indent
    lines: list[str] = []
    if isinstance(value, dict):
        for name, item in value.items():
            if _is_scalar(item):
                lines.append(f"{pad}{key(name)}: {scalar(item)}")
            elif isinstance(item, list) and (flow := _flow(item)) is not None:
                lines.append(f"{pad}{key(name)}: {flow}")
            else:
                lines.append(f"{pad}{key(name)}:")
                lines.extend(block(item, indent + 2))
        return lines
    if isinstance(value, list):
        for item in value:
            if _is_scalar(item):
                lines.append(f"{pad}- {scalar(item)}")
                continue
            inner = block(item, indent + 2)
            # The first line of the item goes on the dash's line.
            lines.append(f"{pad}- {inner[0][indent + 2 :]}")
            lines.extend(inner[1:])
        return lines
    raise TypeError(f"not a mapping or sequence: {value!r}")


def render(text: str, root: Path = ROOT) -> str:
    """The template with every marked block rewritten from its JSON file."""

    def replace(match: re.Match[str]) -> str:
        indent = match["indent"]
        document = json.loads((root / match["path"]).read_text())
        body = "\n".join(block(document, len(indent)))
        return (
            f"{indent}# BEGIN {match['path']}{match['note']}\n{body}\n{indent}# END {match['path']}"
        )

    return BLOCK.sub(replace, text)


def rendered_paths(text: str) -> list[str]:
    """The JSON files the template's blocks are rendered from, in order."""
    return [match["path"] for match in BLOCK.finditer(text)]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--template", type=Path, default=TEMPLATE)
    parser.add_argument(
        "--check", action="store_true", help="exit 1 if the template is not up to date"
    )
    args = parser.parse_args(argv)
    current = args.template.read_text()
    wanted = render(current)
    if args.check:
        if wanted != current:
            print(f"{args.template} is out of date with deploy/iam: run make cfn", file=sys.stderr)
            return 1
        return 0
    if wanted != current:
        args.template.write_text(wanted)
        print(f"rewrote {args.template} ({len(rendered_paths(wanted))} policies)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
