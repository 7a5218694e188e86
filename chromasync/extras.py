"""The ``chromasync`` console script: each command's extras checked before it runs.

``pip install chromasync`` is the producer alone (``producers/``, ``celeryconfig``,
the Lambda handler, ``chromasync poll`` and ``replay``); the worker side, the demo
and the benchmarks come with the extras ``[worker]``, ``[demo]`` and ``[bench]``
(pyproject.toml). Without this check a command whose extra is missing fails deep
inside with an ``ImportError`` traceback, or, for ``run``, in a child process
after it has started others. Here it stops first, names the extra to install and
exits 2 (the status of a usage or configuration error); then it hands over to
:func:`chromasync.cli.main`. ``python -m chromasync`` is the same command.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
from collections.abc import Sequence

from chromasync.core.exits import EXIT_CONFIG

#: Import names that show an extra is installed: one per distribution the extra adds
#: to the base install (tests/test_extras.py keeps them in step with pyproject.toml).
EXTRA_MODULES: dict[str, tuple[str, ...]] = {
    "worker": ("chromadb", "pycurl", "redis", "flower", "prometheus_client"),
    "demo": ("moto", "flask", "flask_cors"),
    "bench": ("matplotlib",),
}

#: The extras each command needs beyond the base install; every command is listed.
#: ``run --demo`` also needs ``demo`` (:func:`needed_extras`). ``bench`` draws its
#: chart only with ``[bench]`` and says so; it runs without.
COMMAND_EXTRAS: dict[str, tuple[str, ...]] = {
    "run": ("worker",),
    "provision": ("worker",),
    "poll": (),
    "replay": (),
    "status": ("worker",),
    "verify": ("worker",),
    "dlq": ("worker",),
    "snapshot": ("worker",),
    "exporter": ("worker",),
    "flower": ("worker",),
    "bench": ("worker", "demo"),
}

#: Commands of the base install whose metrics (``CHROMASYNC_METRICS_URL``, best
#: effort, kept in Redis) are turned off when the Redis client is not installed
#: and the variable is not set, instead of failing on the missing client.
METRICS_OFF_WITHOUT_REDIS = frozenset({"poll"})
#: The variable :data:`METRICS_OFF_WITHOUT_REDIS` sets (``tasks.metrics.store``).
METRICS_URL_ENV = "CHROMASYNC_METRICS_URL"


def needed_extras(args: argparse.Namespace) -> tuple[str, ...]:
    """The extras the parsed command line needs."""
    extras = COMMAND_EXTRAS.get(args.command, ())
    if args.command == "run" and getattr(args, "demo", False):
        extras = (*extras, "demo")
    return extras


def installed(module: str) -> bool:
    """Whether a top-level module can be imported (found, not imported)."""
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def missing_modules(extras: Sequence[str]) -> dict[str, list[str]]:
    """Extra → its modules that cannot be imported, for the extras with any missing."""
    missing: dict[str, list[str]] = {}
    for extra in extras:
        absent = [m for m in EXTRA_MODULES[extra] if not installed(m)]
        if absent:
            missing[extra] = absent
    return missing


def extra_of(module: str | None) -> str | None:
    """The extra that provides a (possibly dotted) module name, if any."""
    top = (module or "").partition(".")[0]
    for extra, modules in EXTRA_MODULES.items():
        if top in modules:
            return extra
    return None


def install_hint(extras: Sequence[str]) -> str:
    return f"pip install 'chromasync[{','.join(extras)}]'"


def missing_message(command: str, missing: dict[str, list[str]]) -> str:
    """The one line that says what is missing and what to install."""
    modules = ", ".join(m for absent in missing.values() for m in absent)
    extras = ", ".join(f"chromasync[{extra}]" for extra in missing)
    return (
        f"chromasync {command}: needs {modules} (from {extras}), not installed; "
        f"install with: {install_hint(list(missing))}"
    )


def _metrics_off_without_redis(command: str) -> None:
    if command not in METRICS_OFF_WITHOUT_REDIS or installed("redis"):
        return
    if os.environ.get(METRICS_URL_ENV, "").strip():
        return  # asked for explicitly: a missing client is then an error (below)
    os.environ[METRICS_URL_ENV] = "off"
    print(
        f"chromasync {command}: metrics are off: the Redis client is not installed "
        f"({install_hint(['worker'])} records them)",
        file=sys.stderr,
    )


def main(argv: Sequence[str] | None = None) -> int:
    from chromasync import cli

    argv = list(sys.argv[1:] if argv is None else argv)
    # --help and usage errors end here, as they would in cli.main.
    args = cli.build_parser().parse_args(argv)
    missing = missing_modules(needed_extras(args))
    if missing:
        print(missing_message(args.command, missing), file=sys.stderr)
        return EXIT_CONFIG
    _metrics_off_without_redis(args.command)
    try:
        return cli.main(argv)
    except ModuleNotFoundError as exc:
        extra = extra_of(exc.name)
        if extra is None:
            raise
        original = exc.__context__
        if original is not None and not isinstance(original, ImportError):
            # The command failed and the CLI's error handling, which lives with the
            # worker code, could not be loaded: show the command's own error.
            raise original from None
        print(missing_message(args.command, {extra: [str(exc.name)]}), file=sys.stderr)
        return EXIT_CONFIG


if __name__ == "__main__":
    sys.exit(main())
