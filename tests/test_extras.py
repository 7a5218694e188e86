"""Extras: a plain ``pip install chromasync`` is the producer; a command whose extra is missing
says which to install and exits 2.

"A plain install" is run for real: ``python -I -S`` (no site-packages) with only the
project's source and the pinned packages of its base dependencies
(deploy/requirements/lambda.txt, installed for Lambda's platform, which this
Linux x86_64 CPython 3.11 runs too; see tests/lambda_build.py). So no chromadb,
Redis client, pycurl, moto or Flower can be imported, and the child checks that
nothing was imported from anywhere else.
"""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path

import boto3
import pytest
from packaging.requirements import Requirement

from chromasync.commands import COMMANDS
from chromasync.core.config import Settings
from chromasync.core.keys import image_pk, line_sk
from chromasync.extras import COMMAND_EXTRAS, EXTRA_MODULES
from chromasync.local import free_port
from chromasync.provision import provision
from tests.lambda_build import ROOT, isolated, producer_site
from tests.producing import IMAGE, Queues, typed

#: What a producer-only install must not be able to import.
WORKER_SIDE = ("chromadb", "redis", "pycurl", "flower", "prometheus_client", "moto", "flask")


def pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def module_name(distribution: str) -> str:
    return distribution.lower().replace("-", "_")


def test_the_extras_modules_are_the_distributions_each_extra_adds() -> None:
    project = pyproject()["project"]
    base = {Requirement(r).name for r in project["dependencies"]}
    for extra, modules in EXTRA_MODULES.items():
        added = {
            module_name(req.name)
            for req in map(Requirement, project["optional-dependencies"][extra])
            if req.name not in base and req.name != project["name"]
        }
        assert set(modules) == added, extra


def test_the_base_install_is_the_producer() -> None:
    base = {Requirement(r).name for r in pyproject()["project"]["dependencies"]}
    # ijson: `chromasync replay` streams a Lambda event of any size (producers/replay_input/).
    assert base == {"celery", "kombu", "boto3", "pydantic", "typing-extensions", "ijson"}
    # celery[sqs] would bring pycurl, kombu's SQS *consumer*: the producer only sends.
    assert all(not Requirement(r).extras for r in pyproject()["project"]["dependencies"])


def test_every_command_says_which_extras_it_needs() -> None:
    assert set(COMMAND_EXTRAS) == set(COMMANDS)
    assert {e for extras in COMMAND_EXTRAS.values() for e in extras} <= set(EXTRA_MODULES)
    assert COMMAND_EXTRAS["poll"] == COMMAND_EXTRAS["replay"] == ()


def producer_only(code: str, env: dict[str, str], cwd: Path) -> tuple[int, str, str]:
    """Run ``code`` with only the base install importable; (status, stdout, stderr)."""
    checks = "".join(
        f"assert importlib.util.find_spec({m!r}) is None, '{m} is importable'\n"
        for m in WORKER_SIDE
    )
    done = isolated("import importlib.util\n" + checks + code, [producer_site(), ROOT], env, cwd)
    return done.returncode, done.stdout, done.stderr


#: ``chromasync poll --once`` for :func:`producer_only`.
POLL_ONCE = "from chromasync.extras import main\nexit_code = main(['poll', '--once'])\n"

#: Commands and the extras their message must name.
NEEDS = [
    (["verify"], "worker"),
    (["status"], "worker"),
    (["flower"], "worker"),
    (["provision"], "worker"),
    (["run"], "worker"),
    (["run", "--demo"], "worker,demo"),
    (["bench", "--smoke"], "worker,demo"),
]


@pytest.mark.slow
def test_a_command_without_its_extra_names_it_and_exits_2(tmp_path: Path) -> None:
    # One child for every command: the check runs before anything is started.
    code = (
        "import contextlib, io, json\n"
        "from chromasync.extras import main\n"
        "results = []\n"
        f"for argv in {[argv for argv, _ in NEEDS]!r}:\n"
        "    err = io.StringIO()\n"
        "    with contextlib.redirect_stderr(err):\n"
        "        results.append((main(argv), err.getvalue()))\n"
        "print(json.dumps(results))\n"
    )
    status, stdout, stderr = producer_only(code, {"PATH": "/usr/bin:/bin"}, tmp_path)
    assert status == 0, stderr
    for (argv, extras), (code_, message) in zip(NEEDS, json.loads(stdout), strict=True):
        assert code_ == 2, argv
        assert f"pip install 'chromasync[{extras}]'" in message, (argv, message)
        assert re.match(rf"chromasync {argv[0]}: needs \S+", message), message
        assert "Traceback" not in message


@pytest.mark.slow
def test_replay_runs_on_the_base_install(producer_env: dict[str, str], tmp_path: Path) -> None:
    from tests.producing import line_record

    settings = Settings.from_env(producer_env)
    queues = Queues(settings)
    (tmp_path / "event.json").write_text(json.dumps({"Records": [line_record("INSERT", 7)]}))
    status, stdout, stderr = producer_only(
        "from chromasync.extras import main\nexit_code = main(['replay', 'event.json'])\n",
        producer_env,
        tmp_path,
    )
    assert status == 0, stderr
    assert re.search(r"tasks sent\s+1 \(lines 1\)", stdout), stdout
    ((task,),) = [queues.tasks("lines")]
    assert [c.sequence_int for c in task.batch.changes] == [7]


@pytest.mark.slow
def test_poll_runs_on_the_base_install_with_metrics_off(
    producer_env: dict[str, str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("CHROMASYNC_METRICS_URL", raising=False)
    env = {k: v for k, v in producer_env.items() if k != "CHROMASYNC_METRICS_URL"}
    settings = Settings.from_env(env)
    queues = Queues(settings)
    provision(env, source_table=True, snapshot_bucket=False)
    dynamodb = boto3.client("dynamodb", **settings.aws.client_kwargs())
    item = {"PK": image_pk(IMAGE), "SK": line_sk(1, 1), "text": "TOTAL 12.00"}
    dynamodb.put_item(TableName=settings.table, Item=typed(item))

    status, stdout, stderr = producer_only(POLL_ONCE, env, tmp_path)
    assert status == 0, stderr
    assert "metrics are off: the Redis client is not installed" in stderr
    assert "1 records handled; 1 changes, 1 tasks sent" in stdout
    ((task,),) = [queues.tasks("lines")]
    assert [c.event_name for c in task.batch.changes] == ["INSERT"]


@pytest.mark.slow
@pytest.mark.parametrize(
    ("variable", "value", "status", "said"),
    [
        pytest.param(
            "CHROMASYNC_CHECKPOINT_URL",
            "redis://127.0.0.1:6379/15",
            2,
            ["chromasync poll: needs redis (from chromasync[worker])"],
            id="redis checkpoints name the extra",
        ),
        pytest.param(
            "AWS_ENDPOINT_URL",
            "http://127.0.0.1:{port}",
            3,
            ["unreachable", "127.0.0.1:{port}"],
            id="an unreachable endpoint",
        ),
    ],
)
def test_poll_on_the_base_install_says_what_stops_it(
    producer_env: dict[str, str],
    tmp_path: Path,
    variable: str,
    value: str,
    status: int,
    said: list[str],
) -> None:
    port = free_port()
    env = {**producer_env, variable: value.format(port=port)}
    code, _, stderr = producer_only(POLL_ONCE, env, tmp_path)
    assert code == status, stderr
    for text in said:
        assert text.format(port=port) in stderr
    assert "Traceback" not in stderr
