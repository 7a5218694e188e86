"""moto in server mode, with DynamoDB requests applied one at a time.

moto's server handles each request on its own thread and evaluates a
DynamoDB ``ConditionExpression`` and the write that follows as two steps,
so two concurrent conditional writes can both succeed. Real DynamoDB
makes them one atomic step, and the DynamoDB lock backend relies on that.
This wrapper serialises DynamoDB and DynamoDB Streams requests (SQS and S3
stay concurrent, so long polls do not block anything), which restores the
atomicity the locks need. It also makes moto's reads cheaper without changing
their answers: a Query reads its partition, not the whole table
(:func:`index_partition_queries`), reads are written out as JSON directly
(:func:`serialise_reads_directly`) and per-request lookups that never change are
computed once (:func:`cache_fixed_lookups`). When IAM is enforced
(``INITIAL_NO_AUTH_ACTION_COUNT`` or ``/moto-api/reset-auth``), requests are
authorised the way AWS does it by :mod:`chromasync.motoiam`, installed only
then. With ``--count-requests`` (or ``CHROMASYNC_MOTO_COUNT_REQUESTS=1``) it counts
requests, DynamoDB read and write units and SQS payloads for the AWS cost model
(:mod:`chromasync.requestcount`, at ``/_chromasync/requests``). Run it as
``python -m chromasync.motoserver -p PORT [--moto-serializer] [--count-requests]``.
"""

from __future__ import annotations

import argparse
import base64
import datetime
import json
import os
import threading
from collections.abc import Callable, Iterable, Sequence
from decimal import Decimal
from typing import Any

from chromasync.requestcount import COUNT_ENV, RequestCounter

#: Prefix of the X-Amz-Target header of DynamoDB and DynamoDB Streams requests.
DYNAMODB_TARGET_PREFIX = "DynamoDB"

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


class SerialisedDynamoDB:
    """WSGI middleware: one DynamoDB request at a time, everything else as is."""

    def __init__(self, app: WSGIApp) -> None:
        self.app = app
        self.lock = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        if environ.get("HTTP_X_AMZ_TARGET", "").startswith(DYNAMODB_TARGET_PREFIX):
            with self.lock:
                # Consume the body inside the lock: the write happens while iterating.
                return [b"".join(self.app(environ, start_response))]
        return self.app(environ, start_response)


def index_partition_queries() -> None:
    """Make moto answer a Query from the one partition it names, and the key prefix it asks.

    moto's ``Table.query`` lists and sorts every item of the table to answer a
    query on one partition key (O(N log N) per query); real DynamoDB reads only
    that partition. Reading only the partition makes a Query's cost follow the
    partition's size rather than the table's, which decides whether the load test
    fits in CI. A ``begins_with`` on the sort key is answered from the items with
    that prefix only: moto measures the size of every candidate item before it
    applies the key condition, so a word's labels would cost as much as its whole
    receipt. moto still applies the key condition, the filter and the limits
    itself. Queries on an index keep moto's own path.
    """
    from moto.dynamodb.models.table import Table

    hint = threading.local()
    original_query = Table.query
    original_all_items = Table.all_items

    def query(self: Any, hash_key: Any, *args: Any, **kwargs: Any) -> Any:
        index_name = kwargs.get("index_name", args[6] if len(args) > 6 else None)
        if index_name is None and hash_key is not None and self.range_key_attr:
            hint.partition = hash_key
            comparison = kwargs.get("range_comparison", args[0] if args else None)
            values = kwargs.get("range_objs", args[1] if len(args) > 1 else None)
            if str(comparison).upper() == "BEGINS_WITH" and values and values[0].type == "S":
                hint.prefix = values[0].value
        try:
            return original_query(self, hash_key, *args, **kwargs)
        finally:
            hint.partition = None
            hint.prefix = None

    def all_items(self: Any) -> Any:
        partition = getattr(hint, "partition", None)
        if partition is None or partition not in self.items:
            return original_all_items(self) if partition is None else []
        items = self.items[partition].values()
        prefix = getattr(hint, "prefix", None)
        if prefix is not None:
            items = [
                i for i in items if i.range_key.type == "S" and i.range_key.value.startswith(prefix)
            ]
        return sorted(items, key=lambda item: item.range_key)

    Table.query = query  # type: ignore[method-assign]
    Table.all_items = all_items  # type: ignore[method-assign]


def cache_fixed_lookups() -> None:
    """Compute once two answers moto recomputes on every request.

    To route a request moto lists its own package directory and stats every entry
    (~60 system calls), and to dispatch it lists the response class's methods with
    ``inspect.getmembers``; neither changes while the server runs, and both weigh
    on a small request such as a GetItem.
    """
    import functools

    from moto import backends
    from moto.core import responses

    modules = tuple(backends.list_of_moto_modules())
    backends.list_of_moto_modules = lambda: modules
    responses.method_names_from_class = functools.cache(responses.method_names_from_class)


#: Read operations whose results moto already holds in wire form (typed attribute
#: maps); :func:`serialise_reads_directly` writes them out as JSON without moto's
#: shape-walking serializer.
DIRECT_JSON_OPERATIONS = frozenset({"GetItem", "BatchGetItem", "Query", "Scan", "GetRecords"})
#: Response header that marks an answer written by that direct path.
DIRECT_HEADER = "x-chromasync-direct-json"


def _wire(value: Any) -> Any:
    """What the AWS JSON protocol sends for a value json cannot write itself."""
    if isinstance(value, bytes | bytearray):
        return base64.b64encode(value).decode("ascii")
    if isinstance(value, datetime.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=datetime.UTC)
        return value.timestamp()
    if isinstance(value, Decimal):
        return str(value)
    raise TypeError(f"cannot send {type(value).__name__} as JSON")


def _without_none(value: Any) -> Any:
    """The result without None members, as moto's serializer leaves them out."""
    if isinstance(value, dict):
        return {k: _without_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_without_none(v) for v in value]
    return value


def serialise_reads_directly() -> None:
    """Write the results of DynamoDB reads and stream reads as JSON directly.

    moto serialises every response by walking botocore's output shape, member
    by member, looking up each member's possible names, which is most of what
    moto spends on a read that returns many items. The items of these reads are
    typed attribute maps already, which is the wire form; only bytes (base64)
    and times (epoch seconds) need converting. Members the output shape does not
    name are ignored by boto3's parser, as they are by real clients. Errors and
    every other operation keep moto's own path. ``tests/test_motoserver.py``
    checks every attribute type and both paths give boto3 the same answer.
    """
    from moto.core.responses import ActionResult

    original = ActionResult.execute_result

    def execute_result(self: Any, context: Any) -> Any:
        operation = str(context.operation_model.name)
        result = self.result
        if operation not in DIRECT_JSON_OPERATIONS or isinstance(result, Exception):
            return original(self, context)
        version = context.service_model.metadata.get("jsonVersion", "1.0")
        body = json.dumps(_without_none(result), default=_wire, separators=(",", ":"))
        headers = {"Content-Type": f"application/x-amz-json-{version}", DIRECT_HEADER: "1"}
        return 200, headers, body

    ActionResult.execute_result = execute_result  # type: ignore[method-assign]


def main(argv: Sequence[str] | None = None) -> None:
    from moto.moto_server.werkzeug_app import (
        DomainDispatcherApplication,
        MotoRequestHandler,
        create_backend_app,
    )
    from werkzeug.serving import run_simple

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-H", "--host", default="127.0.0.1")
    parser.add_argument("-p", "--port", type=int, default=5000)
    parser.add_argument(
        "--moto-serializer",
        action="store_true",
        help="answer reads through moto's own response serializer (slower; for comparison)",
    )
    parser.add_argument(
        "--count-requests",
        action="store_true",
        help="count requests and billed units per service and operation "
        "(GET /_chromasync/requests; also CHROMASYNC_MOTO_COUNT_REQUESTS=1)",
    )
    args = parser.parse_args(argv)
    os.environ.setdefault("MOTO_PORT", str(args.port))
    index_partition_queries()
    cache_fixed_lookups()
    # Before moto's API routes exist: it watches /moto-api/reset-auth.
    from chromasync.motoiam.install import install_on_demand

    install_on_demand()
    if not args.moto_serializer:
        serialise_reads_directly()
    app: WSGIApp = SerialisedDynamoDB(DomainDispatcherApplication(create_backend_app))
    if args.count_requests or os.environ.get(COUNT_ENV, "") not in ("", "0"):
        app = RequestCounter(app)
    run_simple(
        args.host,
        args.port,
        app,
        threaded=True,
        request_handler=MotoRequestHandler,
    )


if __name__ == "__main__":
    main()
