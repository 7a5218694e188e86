"""dynalite: a DynamoDB stand-in that serves requests concurrently, for the benchmarks.

Why: moto serves one DynamoDB request at a time (:mod:`chromasync.motoserver`
serialises them so conditional writes stay atomic, and moto is bound by
Python's GIL anyway), so a benchmark of the worker's table reads measures moto.
dynalite (npm ``dynalite``, DynamoDB's JSON API on LevelDB, in memory here) runs
on Node's event loop: requests are in flight together and their waits overlap,
and every item write takes a per-key lock, so a ``ConditionExpression`` and its
write are one atomic step as on DynamoDB. It is one process, so its CPU work is
on one core; what it gains is cost: a receipt's Query or BatchGetItem takes it
about a quarter of the server CPU moto spends (``benchmarks.table_probe``).

Installed from the npm registry, outside the repository (``.chromasync/`` is
gitignored), by :func:`install` or by hand::

    npm install --prefix .chromasync/tools/dynalite --no-audit --no-fund dynalite@4.0.0

Supported (checked by ``python -m benchmarks.table_probe --check``): CreateTable
(PK/SK, on-demand), DescribeTable, PutItem, BatchWriteItem, GetItem, BatchGetItem
and Query with ``ConsistentRead`` (Query with ``PK = :pk AND begins_with(SK, :p)``,
``FilterExpression``, ``Limit`` and ``ExclusiveStartKey`` paging), UpdateItem and
DeleteItem with a ``ConditionExpression``, Scan, DescribeTimeToLive.

Lacking (dynalite 4.0.0 has no action for them): DynamoDB Streams (so the pipeline
cannot be fed by polling a stream: records must be built from the writes),
TransactWriteItems / TransactGetItems (the dashboard sink's store), UpdateTimeToLive
(TTL never expires anything), IAM (any credentials are accepted). Keep those on
moto: point only the source table's reader here.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from chromasync.local import LocalServer, free_port
from chromasync.processes import spawn

#: The version installed and checked; pinned so a benchmark's figures stay comparable.
DYNALITE_VERSION = "4.0.0"
#: Where :func:`install` puts it: under the repository's gitignored ``.chromasync/``.
DEFAULT_PREFIX = Path(__file__).resolve().parent.parent / ".chromasync" / "tools" / "dynalite"

#: Node program that starts dynalite bound to 127.0.0.1 only (its CLI binds every
#: interface) with tables ACTIVE at once (its default keeps them CREATING 500 ms).
#: argv: the dynalite package directory, the port.
_LAUNCHER = """
const [dir, port] = process.argv.slice(1);
const options = {createTableMs: 0, deleteTableMs: 0, updateTableMs: 0};
const server = require(dir)(options).listen(Number(port), '127.0.0.1', () => {
  console.log('dynalite listening on 127.0.0.1:' + server.address().port);
});
process.on('SIGTERM', () => server.close(() => process.exit(0)));
"""


def package_dir(prefix: Path = DEFAULT_PREFIX) -> Path:
    return prefix / "node_modules" / "dynalite"


def installed(prefix: Path = DEFAULT_PREFIX) -> bool:
    manifest = package_dir(prefix) / "package.json"
    if not manifest.exists():
        return False
    return bool(json.loads(manifest.read_text()).get("version") == DYNALITE_VERSION)


def install(prefix: Path = DEFAULT_PREFIX) -> Path:
    """Install dynalite from the npm registry unless it is there; returns its directory.

    npm skips classic-level's install script (not approved), which is not needed:
    the package ships prebuilt binaries for linux-x64, and the store used here is
    dynalite's in-memory one. Node >= 20 is required.
    """
    if not installed(prefix):
        npm = shutil.which("npm")
        if npm is None:
            raise RuntimeError("npm is not installed: dynalite needs Node.js and npm")
        prefix.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [npm, "install", "--prefix", str(prefix), "--no-audit", "--no-fund",
             f"dynalite@{DYNALITE_VERSION}"],
            check=True,
        )  # fmt: skip
    return package_dir(prefix)


@dataclass
class DynaliteServer(LocalServer):
    """dynalite in a child ``node`` process on 127.0.0.1, data in memory."""

    kind = "dynalite"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @classmethod
    def start(
        cls, port: int | None = None, log: Path | None = None, prefix: Path = DEFAULT_PREFIX
    ) -> DynaliteServer:
        """Start one (installing dynalite first if it is missing) and wait until it answers."""
        directory = install(prefix)
        node = shutil.which("node")
        if node is None:
            raise RuntimeError("node is not installed: dynalite needs Node.js")
        port = port or free_port()
        server = cls(port, spawn([node, "-e", _LAUNCHER, str(directory), str(port)], log=log))
        server._wait_healthy(timeout=30)
        return server

    def answers(self) -> bool:
        """True once it answers a ListTables (signed or not, dynalite only checks the header)."""
        request = urllib.request.Request(
            self.url,
            data=b"{}",
            method="POST",
            headers={
                "X-Amz-Target": "DynamoDB_20120810.ListTables",
                "Content-Type": "application/x-amz-json-1.0",
                "Authorization": "AWS4-HMAC-SHA256 Credential=probe/20200101/us-east-1/"
                "dynamodb/aws4_request, SignedHeaders=host, Signature=probe",
                "X-Amz-Date": "20200101T000000Z",
            },
        )
        try:
            with urllib.request.urlopen(request, timeout=2) as response:
                return bool(response.status == 200)
        except urllib.error.HTTPError:
            return False
