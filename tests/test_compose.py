"""docker-compose.yml stays true to the code: commands that exist, one -c 1 worker per
collection, every variable documented, no variable that stops the whole file, Flower alone
stopped without its password. (Its schema is checked by `make check-compose`.)"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from chromasync.commands import COMMANDS
from chromasync.core.config import DEFAULT_COLLECTIONS

ROOT = Path(__file__).resolve().parent.parent


def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def test_one_single_concurrency_worker_per_target() -> None:
    """Each collection and each other sink compose turns on has its own worker."""
    services = compose()["services"]
    sinks = compose()["x-chromasync-env"]["CHROMASYNC_SINKS"].split(",")
    assert sinks[0] == "chroma"
    for collection in (*DEFAULT_COLLECTIONS, *sinks[1:]):
        command = services[f"worker-{collection}"]["command"]
        assert command[:4] == ["celery", "-A", "tasks", "worker"]
        assert command[command.index("-Q") + 1] == collection
        assert command[command.index("-c") + 1] == "1"


def test_every_chromasync_command_in_compose_exists() -> None:
    for name, service in compose()["services"].items():
        command = service.get("command") or []
        if command and command[0] == "chromasync":
            assert command[1] in COMMANDS, f"{name} runs unknown command {command[1]}"


def test_every_variable_is_documented_in_the_readme() -> None:
    readme = (ROOT / "README.md").read_text()
    documented = set(re.findall(r"`([A-Z][A-Z0-9_]+)`", readme))
    variables = set(compose()["x-chromasync-env"])
    for service in compose()["services"].values():
        env = service.get("environment")
        if isinstance(env, dict):
            variables |= set(env)
    missing = sorted(v for v in variables if v not in documented and not v.startswith("<<"))
    assert not missing, f"variables used in docker-compose.yml but not in README: {missing}"


def test_every_port_is_bound_to_loopback() -> None:
    for name, service in compose()["services"].items():
        for port in service.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), f"{name} publishes {port} on all interfaces"


#: Compose interpolation: ``${NAME}``, ``${NAME:-default}``, ``${NAME:?message}`` and the
#: forms without the colon.
INTERPOLATION = re.compile(r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?P<op>:?[-?])?(?P<arg>[^}]*)\}")


def interpolate(value: str, env: dict[str, str]) -> str:
    """Compose's interpolation of one value, for the forms this file may use."""

    def one(match: re.Match[str]) -> str:
        name, op, arg = match["name"], match["op"] or "", match["arg"]
        present = name in env and (env[name] != "" or not op.startswith(":"))
        if present:
            return env[name]
        if op.endswith("?"):
            raise ValueError(f"compose refuses the whole file: {name} is required ({arg})")
        return arg if op else ""

    return INTERPOLATION.sub(one, value)


def test_no_variable_is_required_so_compose_always_starts() -> None:
    text = (ROOT / "docker-compose.yml").read_text()
    for match in INTERPOLATION.finditer(text):
        interpolate(match[0], {})  # raises for ${NAME:?...}, which stops every service


@pytest.mark.slow
def test_without_a_flower_password_only_flower_stops(tmp_path: Path) -> None:
    flower = compose()["services"]["flower"]
    password = interpolate(flower["environment"]["CHROMASYNC_FLOWER_PASSWORD"], {})
    assert password == ""
    # It does not come back forever: a bounded number of restarts on failure.
    assert re.fullmatch(r"on-failure:[1-9]", flower["restart"]) or flower["restart"] == "no"
    # Nothing else waits for Flower.
    for name, service in compose()["services"].items():
        assert "flower" not in (service.get("depends_on") or {}), name
    # `chromasync flower` itself refuses to start without the password, with exit 2.
    env = {**os.environ, "CHROMASYNC_FLOWER_PASSWORD": password}
    done = subprocess.run(
        [sys.executable, "-m", "chromasync", *flower["command"][1:]],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2, done.stderr
    assert "CHROMASYNC_FLOWER_PASSWORD is not set" in done.stderr
    assert "Traceback" not in done.stderr
