"""Does a DynamoDB stand-in serve the worker's reads in parallel? Measured against moto.

The worker reads a receipt with a consistent Query (``begins_with`` on SK) and a
consistent BatchGetItem (:class:`tasks.sources.TableReader`). Here N client
threads (one boto3 client each) repeat exactly that pair against each server for
a fixed time, in one run on one machine, so the ratio between servers holds even
where the absolute figures move. Servers:

* ``moto``: this project's moto (:class:`chromasync.local.MotoServer`), DynamoDB
  requests serialised so conditional writes are atomic;
* ``moto-unlocked``: moto's own ``moto.server`` (threaded, no lock): what "moto
  in threaded mode" gives; not safe for the locks (see the atomicity check);
* ``dynalite``: :class:`benchmarks.table_standin.DynaliteServer`.

The server's own CPU time per request is read from ``/proc`` so that a figure
bound by the client (the probe shares the machine's cores) can be told from one
bound by the server. ``--check`` also runs every operation the worker, the
DynamoDB lock and the dashboard sink use, and a race of conditional writes.

    python -m benchmarks.table_probe [--check] [--threads 1,2,4,8] [--seconds 3]
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from chromasync.core.keys import PK_SK_KEYS, image_pk, receipt_sk, word_sk
from chromasync.local import LocalServer, MotoServer, free_port
from chromasync.processes import spawn
from chromasync.seed import ReceiptSpec, demo_receipts, seed_table

TABLE = "probe-source"
#: What the key schema of the source table is (the worker's items: PK, SK strings).
SCHEMA: dict[str, Any] = {**PK_SK_KEYS, "BillingMode": "PAY_PER_REQUEST"}
CREDENTIALS = {
    "region_name": "us-east-1",
    "aws_access_key_id": "testing",
    "aws_secret_access_key": "testing",
}


@dataclass
class PlainMotoServer(LocalServer):
    """moto's own ``python -m moto.server``: threaded, DynamoDB requests not serialised."""

    kind = "moto.server"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @classmethod
    def start(cls, log: Path | None = None) -> PlainMotoServer:
        port = free_port()
        command = [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)]
        server = cls(port, spawn(command, log=log))
        server._wait_healthy()
        return server

    def answers(self) -> bool:
        import urllib.request

        with urllib.request.urlopen(f"{self.url}/moto-api/", timeout=2) as response:
            return bool(response.status == 200)


def start_server(name: str, log_dir: Path | None) -> Any:
    """A started server by name (it has ``url``, ``process`` and ``stop()``)."""
    log = log_dir / f"{name}.log" if log_dir else None
    if name == "moto":
        return MotoServer.start(log=log)
    if name == "moto-unlocked":
        return PlainMotoServer.start(log=log)
    if name == "dynalite":
        from benchmarks.table_standin import DynaliteServer

        return DynaliteServer.start(log=log)
    raise ValueError(f"unknown server {name!r}")


def client(url: str, service: str = "dynamodb") -> Any:
    import boto3
    from botocore.config import Config

    config = Config(retries={"max_attempts": 1}, max_pool_connections=4)
    return boto3.client(service, endpoint_url=url, config=config, **CREDENTIALS)


def create_table(url: str, name: str = TABLE, **extra: Any) -> None:
    dynamodb = client(url)
    dynamodb.create_table(TableName=name, **SCHEMA, **extra)
    dynamodb.get_waiter("table_exists").wait(
        TableName=name, WaiterConfig={"Delay": 0.2, "MaxAttempts": 100}
    )


def seed(url: str, receipts: list[ReceiptSpec]) -> int:
    import boto3

    table = boto3.resource("dynamodb", endpoint_url=url, **CREDENTIALS).Table(TABLE)
    return seed_table(table, receipts)


# --- what the worker, the lock and the dashboard need -------------------------------


def _error_code(exc: BaseException) -> str:
    response = getattr(exc, "response", None) or {}
    return str(response.get("Error", {}).get("Code", type(exc).__name__))


def check_api(url: str) -> list[tuple[str, bool, str]]:
    """Each operation the pipeline uses: (what, works as DynamoDB does, detail)."""
    dynamodb = client(url)
    results: list[tuple[str, bool, str]] = []

    def check(what: str, call: Callable[[], str]) -> None:
        try:
            results.append((what, True, call()))
        except Exception as exc:  # noqa: BLE001 - report every failure, keep checking
            results.append((what, False, f"{_error_code(exc)}: {str(exc)[:120]}"))

    table = "probe-api"
    pk = {"S": "IMAGE#a"}

    def create() -> str:
        create_table(url, table)
        return "ACTIVE"

    check("CreateTable PK/SK on demand", create)
    check(
        "DescribeTable",
        lambda: str(dynamodb.describe_table(TableName=table)["Table"]["TableStatus"]),
    )
    check(
        "PutItem",
        lambda: str(
            dynamodb.put_item(TableName=table, Item={"PK": pk, "SK": {"S": "RECEIPT#00001"}})
            and "ok"
        ),
    )

    def batch_write() -> str:
        requests = [
            {"PutRequest": {"Item": {"PK": pk, "SK": {"S": f"RECEIPT#00001#WORD#{i:05d}"}}}}
            for i in range(25)
        ]
        left = dynamodb.batch_write_item(RequestItems={table: requests})["UnprocessedItems"]
        return f"25 items, unprocessed {len(left)}"

    check("BatchWriteItem", batch_write)
    check(
        "GetItem ConsistentRead",
        lambda: str(
            "Item"
            in dynamodb.get_item(
                TableName=table, Key={"PK": pk, "SK": {"S": "RECEIPT#00001"}}, ConsistentRead=True
            )
        ),
    )

    def batch_get() -> str:
        keys = [{"PK": pk, "SK": {"S": f"RECEIPT#00001#WORD#{i:05d}"}} for i in range(30)]
        answer = dynamodb.batch_get_item(
            RequestItems={table: {"Keys": keys, "ConsistentRead": True}}
        )
        return f"{len(answer['Responses'][table])} of 25 present keys (30 asked)"

    check("BatchGetItem ConsistentRead", batch_get)

    def query_pages() -> str:
        kwargs: dict[str, Any] = {
            "TableName": table,
            "KeyConditionExpression": "PK = :pk AND begins_with(SK, :sk)",
            "ExpressionAttributeValues": {":pk": pk, ":sk": {"S": "RECEIPT#00001#WORD#"}},
            "ConsistentRead": True,
            "Limit": 10,
        }
        items, pages = 0, 0
        while True:
            page = dynamodb.query(**kwargs)
            items, pages = items + len(page["Items"]), pages + 1
            if "LastEvaluatedKey" not in page:
                break
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
        if items != 25:
            raise AssertionError(f"{items} items, expected 25")
        return f"{items} items in {pages} pages"

    check("Query begins_with ConsistentRead, paged", query_pages)

    def query_filter() -> str:
        dynamodb.put_item(
            TableName=table,
            Item={"PK": pk, "SK": {"S": "RECEIPT#00001#WORD#00001#LABEL#X"}, "label": {"S": "X"}},
        )
        page = dynamodb.query(
            TableName=table,
            KeyConditionExpression="PK = :pk AND begins_with(SK, :sk)",
            FilterExpression="attribute_exists(#label)",
            ExpressionAttributeNames={"#label": "label"},
            ExpressionAttributeValues={":pk": pk, ":sk": {"S": "RECEIPT#00001#"}},
            ConsistentRead=True,
        )
        if len(page["Items"]) != 1:
            raise AssertionError(f"{len(page['Items'])} items, expected 1")
        return "1 labelled item of 27"

    check("Query FilterExpression", query_filter)

    lock_key = {"PK": {"S": "LOCK#x"}, "SK": {"S": "LOCK"}}

    def acquire(owner: str, now: int) -> bool:
        try:
            dynamodb.update_item(
                TableName=table,
                Key=lock_key,
                UpdateExpression="SET #owner = :owner, expires_at = :expires",
                ConditionExpression="attribute_not_exists(#owner) OR expires_at < :now",
                ExpressionAttributeNames={"#owner": "owner"},
                ExpressionAttributeValues={
                    ":owner": {"S": owner},
                    ":expires": {"N": str(now + 30)},
                    ":now": {"N": str(now)},
                },
            )
            return True
        except Exception as exc:
            if _error_code(exc) == "ConditionalCheckFailedException":
                return False
            raise

    def update_condition() -> str:
        first, second = acquire("a", 1000), acquire("b", 1000)
        if (first, second) != (True, False):
            raise AssertionError(f"acquire, acquire again: {first}, {second}")
        return "acquired, then ConditionalCheckFailedException"

    check("UpdateItem ConditionExpression (lock)", update_condition)

    def delete_condition() -> str:
        condition = {
            "ConditionExpression": "#owner = :owner",
            "ExpressionAttributeNames": {"#owner": "owner"},
        }
        try:
            dynamodb.delete_item(
                TableName=table,
                Key=lock_key,
                ExpressionAttributeValues={":owner": {"S": "b"}},
                **condition,
            )
            raise AssertionError("deleted by the wrong owner")
        except Exception as exc:
            if _error_code(exc) != "ConditionalCheckFailedException":
                raise
        dynamodb.delete_item(
            TableName=table,
            Key=lock_key,
            ExpressionAttributeValues={":owner": {"S": "a"}},
            **condition,
        )
        return "refused for another owner, deleted for the owner"

    check("DeleteItem ConditionExpression", delete_condition)

    def race() -> str:
        """8 threads race for each of 30 locks: exactly one may win each (atomic check+write)."""
        rounds, threads = 30, 8
        wins = [0] * rounds
        guard = threading.Lock()
        clients = [client(url) for _ in range(threads)]

        def contender(index: int) -> None:
            own = clients[index]
            for r in range(rounds):
                try:
                    own.update_item(
                        TableName=table,
                        Key={"PK": {"S": f"RACE#{r}"}, "SK": {"S": "LOCK"}},
                        UpdateExpression="SET #owner = :owner",
                        ConditionExpression="attribute_not_exists(#owner)",
                        ExpressionAttributeNames={"#owner": "owner"},
                        ExpressionAttributeValues={":owner": {"S": str(index)}},
                    )
                except Exception as exc:
                    if _error_code(exc) != "ConditionalCheckFailedException":
                        raise
                    continue
                with guard:
                    wins[r] += 1

        workers = [threading.Thread(target=contender, args=(i,)) for i in range(threads)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        doubled = sum(1 for w in wins if w != 1)
        if doubled:
            raise AssertionError(f"{doubled} of {rounds} locks had {max(wins)} winners")
        return f"{rounds} locks, one winner each"

    check("Conditional writes atomic under 8 racing threads", race)

    def transact() -> str:
        dynamodb.transact_write_items(
            TransactItems=[
                {"Put": {"TableName": table, "Item": {"PK": {"S": "D#1"}, "SK": {"S": "x"}}}},
                {"Delete": {"TableName": table, "Key": {"PK": pk, "SK": {"S": "RECEIPT#00001"}}}},
            ]
        )
        return "ok"

    check("TransactWriteItems", transact)
    check(
        "Scan ConsistentRead",
        lambda: f"{len(dynamodb.scan(TableName=table, ConsistentRead=True)['Items'])} items",
    )
    check(
        "DescribeTimeToLive",
        lambda: str(
            dynamodb.describe_time_to_live(TableName=table)["TimeToLiveDescription"][
                "TimeToLiveStatus"
            ]
        ),
    )
    check(
        "UpdateTimeToLive",
        lambda: str(
            dynamodb.update_time_to_live(
                TableName=table,
                TimeToLiveSpecification={"Enabled": True, "AttributeName": "expires_at"},
            )["TimeToLiveSpecification"]["Enabled"]
        ),
    )

    def streams() -> str:
        create_table(
            url,
            "probe-streamed",
            StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
        )
        arn = dynamodb.describe_table(TableName="probe-streamed")["Table"].get("LatestStreamArn")
        if not arn:
            raise AssertionError("no LatestStreamArn: the table has no stream")
        listed = client(url, "dynamodbstreams").list_streams()["Streams"]
        return f"{len(listed)} stream(s)"

    check("DynamoDB Streams (StreamSpecification, ListStreams)", streams)
    return results


# --- the parallel read measurement --------------------------------------------------


def _cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def read_receipt(dynamodb: Any, spec: ReceiptSpec) -> int:
    """What the worker does for one receipt: a consistent Query of the receipt's
    items (paged) and a consistent BatchGetItem of up to 100 of its words; returns
    the requests made."""
    pk = {"S": image_pk(spec.image_id)}
    kwargs: dict[str, Any] = {
        "TableName": TABLE,
        "KeyConditionExpression": "PK = :pk AND begins_with(SK, :sk)",
        "ExpressionAttributeValues": {":pk": pk, ":sk": {"S": receipt_sk(spec.receipt_id)}},
        "ConsistentRead": True,
    }
    requests = 0
    while True:
        page = dynamodb.query(**kwargs)
        requests += 1
        if "LastEvaluatedKey" not in page:
            break
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
    words = [word_sk(spec.receipt_id, lid, wid) for lid, wid in spec.word_keys()][:100]
    keys = [{"PK": pk, "SK": {"S": sk}} for sk in words]
    request = {TABLE: {"Keys": keys, "ConsistentRead": True}}
    while request:
        answer = dynamodb.batch_get_item(RequestItems=request)
        requests += 1
        request = answer.get("UnprocessedKeys") or {}
    return requests


@dataclass
class Figure:
    server: str
    threads: int
    requests: int
    seconds: float
    server_cpu: float
    client_cpu: float

    @property
    def per_second(self) -> float:
        return self.requests / self.seconds

    @property
    def server_cpu_ms(self) -> float:
        """Server CPU per request: what a request costs the server, whatever the concurrency."""
        return self.server_cpu / self.requests * 1000


def measure(
    server: str, url: str, pid: int, receipts: list[ReceiptSpec], threads: int, seconds: float
) -> Figure:
    """``threads`` clients reading receipts (round robin, each from its own offset)."""
    clients = [client(url) for _ in range(threads)]
    for own in clients:  # connections open and endpoints resolved before the clock starts
        read_receipt(own, receipts[0])
    counts = [0] * threads
    errors: list[BaseException] = []
    stop = threading.Event()

    def reader(index: int) -> None:
        own, n = clients[index], index * 7
        try:
            while not stop.is_set():
                counts[index] += read_receipt(own, receipts[n % len(receipts)])
                n += 1
        except BaseException as exc:  # noqa: BLE001 - re-raised below
            errors.append(exc)

    workers = [threading.Thread(target=reader, args=(i,)) for i in range(threads)]
    cpu_before, client_before = _cpu_seconds(pid), time.process_time()
    began = time.perf_counter()
    for worker in workers:
        worker.start()
    time.sleep(seconds)
    stop.set()
    for worker in workers:
        worker.join()
    elapsed = time.perf_counter() - began
    if errors:
        raise errors[0]
    return Figure(
        server,
        threads,
        sum(counts),
        elapsed,
        _cpu_seconds(pid) - cpu_before,
        time.process_time() - client_before,
    )


def _process_reader(
    url: str, receipts: list[ReceiptSpec], offset: int, start_at: float, seconds: float
) -> tuple[int, float]:
    """One client process's share of :func:`measure_processes`: (requests, its CPU seconds)."""
    own = client(url)
    read_receipt(own, receipts[0])
    time.sleep(max(0.0, start_at - time.time()))
    cpu, n, requests = time.process_time(), offset, 0
    end = time.time() + seconds
    while time.time() < end:
        requests += read_receipt(own, receipts[n % len(receipts)])
        n += 1
    return requests, time.process_time() - cpu


def measure_processes(
    server: str, url: str, pid: int, receipts: list[ReceiptSpec], processes: int, seconds: float
) -> Figure:
    """As :func:`measure`, with one client process each instead of threads: no GIL shared
    between clients, as between the worker's Celery processes."""
    import multiprocessing

    context = multiprocessing.get_context("fork")
    start_at = time.time() + 1.0 + 0.2 * processes  # every process ready before it
    with context.Pool(processes) as pool:
        pending = [
            pool.apply_async(_process_reader, (url, receipts, i * 7, start_at, seconds))
            for i in range(processes)
        ]
        time.sleep(max(0.0, start_at - time.time()))
        cpu_before = _cpu_seconds(pid)
        results = [p.get() for p in pending]
        server_cpu = _cpu_seconds(pid) - cpu_before
    return Figure(
        server,
        processes,
        sum(r for r, _ in results),
        seconds,
        server_cpu,
        sum(c for _, c in results),
    )


@contextmanager
def running(names: Sequence[str], log_dir: Path | None) -> Iterator[dict[str, Any]]:
    servers: dict[str, Any] = {}
    try:
        for name in names:
            servers[name] = start_server(name, log_dir)
        yield servers
    finally:
        for server in servers.values():
            server.stop()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--servers", default="moto,moto-unlocked,dynalite")
    parser.add_argument("--threads", default="1,2,4,8")
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--receipts", type=int, default=20)
    parser.add_argument("--lines", type=int, default=12, help="lines per receipt")
    parser.add_argument("--words", type=int, default=6, help="words per line")
    parser.add_argument(
        "--processes", action="store_true", help="clients as processes, not threads"
    )
    parser.add_argument(
        "--repeat", type=int, default=2, help="best of this many (the machine is shared)"
    )
    parser.add_argument("--check", action="store_true", help="also check the API")
    parser.add_argument("--log-dir", type=Path, default=None)
    args = parser.parse_args(argv)
    names = [n for n in args.servers.split(",") if n]
    counts = [int(n) for n in args.threads.split(",")]
    receipts = demo_receipts(args.receipts, lines=args.lines, words_per_line=args.words)
    clients = "processes" if args.processes else "threads"
    print(
        f"cores: {os.cpu_count()}; receipts: {len(receipts)} of {args.lines}x{args.words} "
        f"words; clients: {clients}, {args.seconds:g} s each"
    )
    failed = False
    with running(names, args.log_dir) as servers:
        if args.check:
            for name, server in servers.items():
                print(f"\n{name}: API check")
                for what, ok, detail in check_api(server.url):
                    failed |= not ok and name != "moto-unlocked"
                    print(f"  {'ok  ' if ok else 'FAIL'} {what}: {detail}")
        figures: dict[tuple[str, int], Figure] = {}
        for name, server in servers.items():
            create_table(server.url)
            items = seed(server.url, receipts)
            print(f"\n{name}: seeded {items} items")
        print(
            f"\n{'server':<14}{'clients':>8}{'req/s':>10}{'server CPU ms/req':>19}"
            f"{'server cores':>14}{'client cores':>14}"
        )
        how = measure_processes if args.processes else measure
        for threads in counts:
            for name, server in servers.items():
                # Best of the repeats: other work on the shared machine slows some
                # measurements down, never speeds one up.
                tries = [
                    how(name, server.url, server.process.pid, receipts, threads, args.seconds)
                    for _ in range(args.repeat)
                ]
                figure = max(tries, key=lambda f: f.per_second)
                figures[(name, threads)] = figure
                print(
                    f"{name:<14}{threads:>8}{figure.per_second:>10.1f}"
                    f"{figure.server_cpu_ms:>19.2f}{figure.server_cpu / figure.seconds:>14.2f}"
                    f"{figure.client_cpu / figure.seconds:>14.2f}"
                )
    base = names[0]
    for name in names[1:]:
        ratios = ", ".join(
            f"{t}: {figures[(name, t)].per_second / figures[(base, t)].per_second:.2f}x"
            for t in counts
        )
        print(f"{name} / {base} req/s by clients: {ratios}")
    for name in names:
        one, most = figures[(name, counts[0])], figures[(name, counts[-1])]
        print(
            f"{name}: {counts[-1]} clients / {counts[0]}: {most.per_second / one.per_second:.2f}x"
        )
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
