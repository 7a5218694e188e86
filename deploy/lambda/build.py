"""Build ``dist/chromasync-producer.zip``: the Lambda handler with the producer's dependencies only.

Why a script of its own: the function runs ``producers.lambda_handler.handler`` on
Lambda's ``python3.11`` x86_64 runtime, so the zip must hold the wheels built for
*that* platform (manylinux2014, CPython 3.11), not whatever this machine has
installed; only what the producer imports (``producers/``, the shared core
``chromasync/core/`` and the pinned packages of ``deploy/requirements/lambda.txt``:
no chromadb, no worker code, no moto, Redis, Flower or pycurl); and the same bytes
every time it is built from the same lock, so a deploy can tell whether anything
changed (entries sorted, one fixed timestamp and mode).

What is left out of the installed packages, and why it is safe:

* celery's command line (:data:`PRUNED_DISTRIBUTIONS`): the handler sends tasks by
  name and never runs ``celery``; ``click`` itself stays, celery imports it;
* botocore's models of services the producer never calls (:data:`BOTOCORE_SERVICES`
  are kept, with the top-level files botocore always loads) and boto3's resource
  models other than :data:`BOTO3_RESOURCES`;
* ``bin/`` (console scripts with this machine's interpreter path) and bytecode.

``tests/test_lambda_zip.py`` runs the handler from the unpacked zip in an
interpreter without site-packages, so anything pruned that the handler needs fails
there. The pip download and the installed packages are cached under
``.chromasync/lambda/`` (keyed by the lock), so a second build only zips.

Usage: ``python deploy/lambda/build.py [--output PATH] [--lock PATH]`` (``make lambda-zip``).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

#: The repository: the script lives in ``deploy/lambda/``.
ROOT = Path(__file__).resolve().parents[2]
#: The pinned producer dependencies (``make lock``).
LOCK = ROOT / "deploy" / "requirements" / "lambda.txt"
#: Where ``make lambda-zip`` writes the package.
OUTPUT = ROOT / "dist" / "chromasync-producer.zip"
#: pip's download cache and the installed packages, one directory per lock.
CACHE = ROOT / ".chromasync" / "lambda"

#: pip options that select Lambda's runtime: CPython 3.11 on x86_64, glibc 2.17 wheels.
PIP_PLATFORM = (
    "--platform",
    "manylinux2014_x86_64",
    "--python-version",
    "3.11",
    "--implementation",
    "cp",
    "--only-binary=:all:",
)

#: Our own code in the zip, relative to :data:`ROOT`: the producer and the shared core it
#: imports (entities, contract, settings); the rest of ``chromasync`` is the CLI and stays out.
SOURCES = ("producers", "chromasync/__init__.py", "chromasync/core")
#: The only entries under ``chromasync/`` the zip may hold.
SHARED_CORE = ("chromasync/__init__.py", "chromasync/core/")

#: Distributions of the lock that only celery's command line uses (``celery shell``,
#: its REPL and plugins); the handler never runs it. Together about 10 MB unzipped.
PRUNED_DISTRIBUTIONS = frozenset(
    {"click-didyoumean", "click-plugins", "click-repl", "prompt-toolkit", "wcwidth"}
)

#: botocore service models kept: SQS (tasks, quarantine), DynamoDB and DynamoDB Streams
#: (checkpoints, the poller), STS (kombu's SQS transport can assume a role).
BOTOCORE_SERVICES = frozenset({"dynamodb", "dynamodbstreams", "sqs", "sts"})

#: boto3 resource models kept (``boto3.resource``); clients need none, these are small.
BOTO3_RESOURCES = frozenset({"dynamodb", "sqs"})

#: Top-level names that must never be in the zip: the worker, the demo, the operator tools.
FORBIDDEN = frozenset(
    {
        "chromadb",
        "tasks",
        "celeryconfig.py",
        "benchmarks",
        "moto",
        "flask",
        "flask_cors",
        "flower",
        "redis",
        "prometheus_client",
        "pycurl",
    }
)

#: Every entry's timestamp (the earliest a zip can hold) and mode: the same bytes each build.
ZIP_DATE = (1980, 1, 1, 0, 0, 0)
#: Unix mode of every file entry; Lambda only needs to read them (.so files included).
ZIP_MODE = 0o100644

#: How many of the biggest packages the build prints.
TOP_PACKAGES = 10

#: Label of our own code in the size report.
OWN_CODE = "chromasync producer (producers/, chromasync/core/)"


@dataclass(frozen=True)
class Built:
    """What a build wrote and how big it is."""

    path: Path
    zipped: int
    unzipped: int
    entries: int
    #: Unzipped bytes per distribution (and our own code), biggest first.
    packages: list[tuple[str, int]]
    #: Bytes of the installed packages that were left out, per reason.
    pruned: dict[str, int]


def mib(size: int) -> str:
    return f"{size / 2**20:.1f} MiB"


def normalise(name: str) -> str:
    """A distribution name as pip compares them (``Prompt_Toolkit`` → ``prompt-toolkit``)."""
    return name.lower().replace("_", "-").replace(".", "-")


def install(lock: Path = LOCK) -> Path:
    """The lock's packages installed for Lambda's platform; built once per lock, then reused.

    The directory name carries a hash of the lock and of the pip options, so a new
    lock gets a fresh install and an old one is never half reused. pip's own
    download cache sits beside it, so even a changed lock downloads only what changed.
    """
    key = hashlib.sha256(lock.read_bytes() + json.dumps(PIP_PLATFORM).encode()).hexdigest()[:16]
    site = CACHE / f"site-{key}"
    if (site / ".complete").exists():
        return site
    CACHE.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix="site-", dir=CACHE))
    command = [
        sys.executable,
        "-m",
        "pip",
        "install",
        "--quiet",
        "--disable-pip-version-check",
        "--no-input",
        "--no-compile",
        "--no-deps",
        "--require-hashes",
        "--target",
        str(staging),
        *PIP_PLATFORM,
        "--requirement",
        str(lock),
    ]
    env = {**os.environ, "PIP_CACHE_DIR": str(CACHE / "pip-cache")}
    try:
        subprocess.run(command, check=True, env=env)
        (staging / ".complete").touch()
        try:
            staging.rename(site)
        except OSError:  # another build got there first; its install is as good
            shutil.rmtree(staging)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return site


def owners(site: Path) -> dict[str, str]:
    """Each installed file (relative path) → the normalised name of its distribution."""
    owner: dict[str, str] = {}
    for record in sorted(site.glob("*.dist-info/RECORD")):
        name = distribution_name(record.parent)
        for line in record.read_text().splitlines():
            path = line.rsplit(",", 2)[0]
            if path and not path.startswith(".."):
                owner[path] = name
        for meta in record.parent.rglob("*"):
            owner[meta.relative_to(site).as_posix()] = name
    return owner


def distribution_name(dist_info: Path) -> str:
    for line in (dist_info / "METADATA").read_text(errors="replace").splitlines():
        if line.startswith("Name:"):
            return normalise(line.partition(":")[2].strip())
    return normalise(dist_info.name.split("-")[0])


def prune_reason(path: str, owner: str | None) -> str | None:
    """Why an installed file stays out of the zip, or None when it goes in."""
    parts = path.split("/")
    if owner in PRUNED_DISTRIBUTIONS:
        return "celery's command line"
    if parts[0] == "bin":
        return "console scripts"
    if "__pycache__" in parts or path.endswith((".pyc", ".pyo")):
        return "bytecode"
    if parts[:2] == ["botocore", "data"] and len(parts) > 3 and parts[2] not in BOTOCORE_SERVICES:
        return "botocore models of other services"
    if parts[:2] == ["boto3", "data"] and len(parts) > 3 and parts[2] not in BOTO3_RESOURCES:
        return "boto3 resource models of other services"
    return None


def files_under(top: Path) -> Iterator[Path]:
    if top.is_file():
        yield top
        return
    for path in sorted(top.rglob("*")):
        if path.is_file():
            yield path


@dataclass(frozen=True)
class Entry:
    """One file of the zip: its name in the zip, where it comes from, whose it is."""

    name: str
    source: Path
    package: str


def collect(
    site: Path, root: Path = ROOT, sources: Iterable[str] = SOURCES
) -> tuple[list[Entry], dict[str, int]]:
    """The zip's entries (sorted by name) and the bytes pruned per reason."""
    owner = owners(site)
    entries: dict[str, Entry] = {}
    pruned: Counter[str] = Counter()
    for path in files_under(site):
        name = path.relative_to(site).as_posix()
        if name == ".complete":
            continue
        who = owner.get(name)
        reason = prune_reason(name, who)
        if reason is not None:
            pruned[reason] += path.stat().st_size
            continue
        entries[name] = Entry(name, path, who or name.split("/")[0])
    for source in sources:
        for path in files_under(root / source):
            name = path.relative_to(root).as_posix()
            if prune_reason(name, None) is None:
                entries[name] = Entry(name, path, OWN_CODE)
    found = sorted({name.split("/")[0] for name in entries} & FORBIDDEN)
    found += sorted(
        name
        for name in entries
        if name.startswith("chromasync/") and not name.startswith(SHARED_CORE)
    )
    if found:
        raise SystemExit(f"refusing to build: the zip would contain {', '.join(found)}")
    return [entries[name] for name in sorted(entries)], dict(pruned)


def write_zip(entries: Sequence[Entry], output: Path) -> None:
    """A zip whose bytes depend only on the entries: sorted, fixed time and mode."""
    output.parent.mkdir(parents=True, exist_ok=True)
    partial = output.with_name(output.name + ".partial")
    with zipfile.ZipFile(partial, "w") as archive:
        for entry in entries:
            info = zipfile.ZipInfo(entry.name, date_time=ZIP_DATE)
            info.external_attr = ZIP_MODE << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, entry.source.read_bytes(), compresslevel=9)
    partial.replace(output)


def build(output: Path = OUTPUT, lock: Path = LOCK) -> Built:
    site = install(lock)
    entries, pruned = collect(site)
    write_zip(entries, output)
    sizes: Counter[str] = Counter()
    for entry in entries:
        sizes[entry.package] += entry.source.stat().st_size
    return Built(
        path=output,
        zipped=output.stat().st_size,
        unzipped=sum(sizes.values()),
        entries=len(entries),
        packages=sizes.most_common(),
        pruned=pruned,
    )


def report(built: Built) -> str:
    """What the build prints: sizes, the biggest packages, what was left out."""
    try:
        shown = built.path.relative_to(Path.cwd())
    except ValueError:
        shown = built.path
    lines = [
        f"wrote {shown}: {built.entries} files",
        f"  zipped    {mib(built.zipped)} ({built.zipped:,} bytes)",
        f"  unzipped  {mib(built.unzipped)} ({built.unzipped:,} bytes)",
        "  biggest packages (unzipped):",
    ]
    for name, size in built.packages[:TOP_PACKAGES]:
        lines.append(f"    {mib(size):>9}  {name}")
    lines.append("  left out (unzipped):")
    for reason, size in sorted(built.pruned.items(), key=lambda item: -item[1]):
        lines.append(f"    {mib(size):>9}  {reason}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--output", type=Path, default=OUTPUT, help="the zip to write")
    parser.add_argument("--lock", type=Path, default=LOCK, help="the pinned requirements")
    args = parser.parse_args(argv)
    print(report(build(args.output.resolve(), args.lock.resolve())), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
