"""deploy/cloudformation.yaml for the tests, loaded with its intrinsic functions.

:func:`load_template` reads the YAML short forms (``!Ref``, ``!Sub``, ``!GetAtt``...)
into the long JSON forms (``{"Ref": ...}``, ``{"Fn::Sub": ...}``), which is what
CloudFormation itself sees. :func:`sub_text` turns every ``!Sub`` back into its
text, placeholders kept, so a policy in the template compares with its
deploy/iam/*.json file as written; :func:`substitute` fills placeholders in, so
it compares with what a deployed stack holds.
"""

from __future__ import annotations

import io
import json
import re
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

#: The repository's root.
ROOT = Path(__file__).resolve().parent.parent
#: The template under test.
TEMPLATE = ROOT / "deploy" / "cloudformation.yaml"
#: The policies the template must carry (the source of truth).
IAM_DIR = ROOT / "deploy" / "iam"
#: ``${Name}`` in a ``!Sub`` string or a policy file (``${!Literal}`` is not one).
PLACEHOLDER = re.compile(r"\$\{([^!}][^}]*)\}")

#: Short-form tags and the function each stands for (``!Ref`` is not an ``Fn::``).
_FUNCTIONS = {
    "Ref": "Ref",
    "Condition": "Condition",
    **{
        name: f"Fn::{name}"
        for name in (
            "Sub",
            "GetAtt",
            "If",
            "Equals",
            "Not",
            "And",
            "Or",
            "Join",
            "Select",
            "Split",
            "FindInMap",
            "Base64",
            "ImportValue",
            "GetAZs",
            "Cidr",
        )
    },
}


class TemplateLoader(yaml.SafeLoader):
    """A safe loader that also reads CloudFormation's short-form tags."""


def _construct(loader: yaml.SafeLoader, node: yaml.Node) -> dict[str, Any]:
    name = _FUNCTIONS[node.tag[1:]]
    value: Any
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
        if name == "Fn::GetAtt":
            # !GetAtt Resource.Attribute is ["Resource", "Attribute"] in the long form.
            value = str(value).split(".", 1)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    return {name: value}


for _tag in _FUNCTIONS:
    TemplateLoader.add_constructor(f"!{_tag}", _construct)


def load_template(path: Path = TEMPLATE) -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.load(path.read_text(), Loader=TemplateLoader)
    return loaded


def sub_text(value: Any) -> Any:
    """``value`` with every ``{"Fn::Sub": "text"}`` replaced by its text (placeholders kept)."""
    if isinstance(value, dict):
        if set(value) == {"Fn::Sub"} and isinstance(value["Fn::Sub"], str):
            return value["Fn::Sub"]
        return {k: sub_text(v) for k, v in value.items()}
    if isinstance(value, list):
        return [sub_text(v) for v in value]
    return value


def placeholders(value: Any) -> set[str]:
    """Every ``${Name}`` in the strings of a document."""
    return set(PLACEHOLDER.findall(json.dumps(value)))


def substitute(value: Any, values: Mapping[str, str]) -> Any:
    """``value`` (plain strings with placeholders) with every placeholder filled in."""
    if isinstance(value, dict):
        return {k: substitute(v, values) for k, v in value.items()}
    if isinstance(value, list):
        return [substitute(v, values) for v in value]
    if isinstance(value, str):
        return PLACEHOLDER.sub(lambda m: values[m.group(1)], value)
    return value


def policy_file(name: str) -> dict[str, Any]:
    """deploy/iam/NAME.json."""
    document: dict[str, Any] = json.loads((IAM_DIR / f"{name}.json").read_text())
    return document


def parameter_defaults(template: Mapping[str, Any]) -> dict[str, str]:
    """Each parameter's default, as the string CloudFormation substitutes."""
    return {
        name: str(spec["Default"])
        for name, spec in template["Parameters"].items()
        if "Default" in spec
    }


def producer_zip(root: Path = ROOT) -> bytes:
    """A real zip of the producer's own code (``producers/`` and ``chromasync/core/``).

    moto stores a function's code and never runs it here, so its dependencies
    are left out; dist/chromasync-producer.zip (``make lambda-zip``) is what AWS gets.
    """
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        sources = [*(root / "producers").rglob("*.py"), *(root / "chromasync/core").rglob("*.py")]
        for path in sorted([root / "chromasync/__init__.py", *sources]):
            archive.write(path, path.relative_to(root).as_posix())
    return buffer.getvalue()
