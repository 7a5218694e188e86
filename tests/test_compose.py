"""docker-compose.yml stays true to the code: commands that exist, one -c 1 worker per
collection, every variable documented. (Its schema is checked by `make check-compose`.)"""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from chromasync.commands import COMMANDS
from producers.config import DEFAULT_COLLECTIONS

ROOT = Path(__file__).resolve().parent.parent


def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def test_one_single_concurrency_worker_per_collection() -> None:
    services = compose()["services"]
    for collection in DEFAULT_COLLECTIONS:
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
