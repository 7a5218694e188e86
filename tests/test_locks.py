"""Lock backends against the real stores (redis-server, a moto server in server mode) and
the in-process one.

Every behaviour test runs on every backend, since the worker must not care which
one ``CHROMASYNC_LOCK_URL`` picked.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import boto3
import pytest
import redis
from botocore.config import Config
from botocore.exceptions import EndpointConnectionError
from botocore.stub import Stubber

from chromasync.core.config import AwsSettings, ConfigError
from chromasync.core.resources import MissingResource
from chromasync.provision import ensure_lock_table
from tasks.locks import (
    DynamoDBLockBackend,
    Lease,
    LockBackend,
    LockBackendError,
    MemoryLockBackend,
    RedisLockBackend,
    lock_backend_from_url,
)
from tasks.preflight import check_settings
from tests.servers import MotoServer, free_port, redis_url, wait_for
from tests.stores import store_params

#: Short enough for tests to wait out, long enough to survive a slow request.
SHORT_TTL = 0.3
#: A lease that will not run out during a test.
LONG_TTL = 30.0
#: Lock table the DynamoDB backend uses in these tests.
TABLE = "chromasync-test-locks"


def aws_for(url: str | None) -> AwsSettings:
    return AwsSettings(
        endpoint_url=url, region="us-east-1", access_key_id="testing", secret_access_key="testing"
    )


def memory_url() -> str:
    """A store of this test's own: a fresh name is an empty store."""
    return f"memory://test-{uuid.uuid4().hex[:8]}"


@pytest.fixture(params=store_params("redis", "dynamodb"))
def backend(request: pytest.FixtureRequest) -> Iterator[LockBackend]:
    if request.param == "redis":
        request.getfixturevalue("redis_client")  # clean db 15, fails clearly if Redis is down
        made: LockBackend = lock_backend_from_url(redis_url())
    elif request.param == "memory":
        made = lock_backend_from_url(memory_url())
    else:
        moto: MotoServer = request.getfixturevalue("moto")
        ensure_lock_table(aws_for(moto.url), TABLE)
        made = lock_backend_from_url(f"dynamodb://{TABLE}", aws=aws_for(moto.url))
    yield made
    made.close()


def token() -> str:
    return f"worker-{uuid.uuid4().hex[:8]}"


def acquire_after_expiry(backend: LockBackend, name: str, owner: str, ttl: float) -> Lease:
    """Poll until the previous lease has run out and ``owner`` gets the lock."""
    lease = wait_for(
        lambda: backend.acquire(name, owner, ttl), timeout=10, what=f"{owner} to get {name}"
    )
    assert isinstance(lease, Lease)
    return lease


def test_acquire_when_free(backend: LockBackend) -> None:
    owner = token()
    lease = backend.acquire("lines", owner, LONG_TTL)
    assert lease is not None
    assert (lease.name, lease.owner, lease.ttl) == ("lines", owner, LONG_TTL)
    assert lease.fence >= 1


def test_second_owner_refused_while_held(backend: LockBackend) -> None:
    first = backend.acquire("lines", token(), LONG_TTL)
    assert first is not None
    assert backend.acquire("lines", token(), LONG_TTL) is None
    # Even the holder cannot take it twice: a second acquisition would bump the fence.
    assert backend.acquire("lines", first.owner, LONG_TTL) is None
    # Other locks are independent.
    assert backend.acquire("words", token(), LONG_TTL) is not None


def test_acquire_after_expiry(backend: LockBackend) -> None:
    first = backend.acquire("lines", token(), SHORT_TTL)
    assert first is not None
    second = acquire_after_expiry(backend, "lines", token(), LONG_TTL)
    assert second.owner != first.owner
    assert backend.info("lines").owner == second.owner


def test_fence_strictly_increases(backend: LockBackend) -> None:
    fences = []
    for _ in range(3):
        lease = backend.acquire("lines", token(), LONG_TTL)
        assert lease is not None
        fences.append(lease.fence)
        assert backend.release(lease)
    expiring = backend.acquire("lines", token(), SHORT_TTL)
    assert expiring is not None
    fences.append(expiring.fence)
    fences.append(acquire_after_expiry(backend, "lines", token(), LONG_TTL).fence)
    assert fences == sorted(set(fences)), fences


def test_extend_by_owner(backend: LockBackend) -> None:
    # Long enough that a slow first request cannot let it run out before the extension.
    first_ttl = 1.0
    lease = backend.acquire("lines", token(), first_ttl)
    assert lease is not None
    assert backend.extend(lease, LONG_TTL)
    info = backend.info("lines")
    assert info.owner == lease.owner
    assert info.remaining is not None and info.remaining > first_ttl
    # Past the original ttl the extended lease still keeps others out; nothing to poll for
    # when the expected outcome is that nothing changes, hence a plain sleep.
    time.sleep(first_ttl * 1.5)
    assert backend.acquire("lines", token(), LONG_TTL) is None
    assert backend.extend(lease, LONG_TTL)


#: What only the holder of a lease may do with it.
HOLDER_ONLY = [
    pytest.param(lambda backend, lease: backend.extend(lease, LONG_TTL), id="extend"),
    pytest.param(lambda backend, lease: backend.release(lease), id="release"),
]


@pytest.mark.parametrize("call", HOLDER_ONLY)
def test_a_stranger_can_do_nothing_with_a_held_lock(
    backend: LockBackend, call: Callable[[LockBackend, Lease], bool]
) -> None:
    lease = backend.acquire("lines", token(), LONG_TTL)
    assert lease is not None
    stranger = Lease(name="lines", owner=token(), ttl=LONG_TTL, fence=lease.fence)
    assert call(backend, stranger) is False
    assert backend.info("lines").owner == lease.owner
    assert backend.acquire("lines", token(), LONG_TTL) is None


@pytest.mark.parametrize("taken", [True, False], ids=["taken by another", "taken by nobody"])
def test_an_expired_lease_can_be_neither_extended_nor_released(
    backend: LockBackend, taken: bool
) -> None:
    """Once a lease ran out its holder lost it, whether or not somebody took the lock."""
    old = backend.acquire("lines", token(), SHORT_TTL)
    assert old is not None
    if taken:
        new = acquire_after_expiry(backend, "lines", token(), LONG_TTL)
        now_held = (new.owner, new.fence)
    else:
        wait_for(lambda: backend.info("lines").owner is None, timeout=10, what="lease expiry")
        now_held = (None, old.fence)
    assert not backend.extend(old, LONG_TTL)
    assert not backend.release(old)
    info = backend.info("lines")
    assert (info.owner, info.fence) == now_held


def test_release_by_owner_frees_it(backend: LockBackend) -> None:
    lease = backend.acquire("lines", token(), LONG_TTL)
    assert lease is not None
    assert backend.release(lease) is True
    assert backend.release(lease) is False
    info = backend.info("lines")
    assert (info.owner, info.remaining, info.fence) == (None, None, lease.fence)
    assert backend.acquire("lines", token(), LONG_TTL) is not None


def test_info(backend: LockBackend) -> None:
    empty = backend.info("never-used")
    assert (empty.name, empty.owner, empty.remaining, empty.fence) == (
        "never-used",
        None,
        None,
        0,
    )
    lease = backend.acquire("lines", token(), 10.0)
    assert lease is not None
    info = backend.info("lines")
    assert info.name == "lines"
    assert info.owner == lease.owner
    assert info.remaining is not None and 0 < info.remaining <= 10.0
    assert info.fence == lease.fence


def race_for(backend: LockBackend, name: str, threads: int) -> list[Lease | None]:
    """``threads`` owners call acquire at the same instant; what each of them got."""
    start = threading.Barrier(threads)
    results: list[Lease | None] = []
    errors: list[BaseException] = []
    guard = threading.Lock()

    def contend() -> None:
        start.wait()
        try:
            result = backend.acquire(name, token(), LONG_TTL)
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            with guard:
                errors.append(exc)
            return
        with guard:
            results.append(result)

    workers = [threading.Thread(target=contend) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(30)
    assert not errors, errors
    assert len(results) == threads
    return results


def test_racing_acquirers_get_exactly_one_winner(backend: LockBackend) -> None:
    """Real DynamoDB makes a conditional write atomic; plain moto does not (its threaded
    server checks, then writes), so the tests' moto is chromasync.motoserver, which
    serialises DynamoDB requests. Without it this fails for dynamodb about one run in three."""
    for round_ in range(5):
        name = f"race-{round_}"
        winners = [lease for lease in race_for(backend, name, threads=8) if lease is not None]
        assert len(winners) == 1, winners
        assert backend.info(name).owner == winners[0].owner


def test_ttl_must_be_positive(backend: LockBackend) -> None:
    with pytest.raises(ValueError, match="positive"):
        backend.acquire("lines", token(), 0)


# -- choosing a backend --------------------------------------------------------------------


@pytest.mark.usefixtures("redis_client")
def test_url_picks_redis() -> None:
    backend = lock_backend_from_url(redis_url())
    assert isinstance(backend, RedisLockBackend)
    backend.close()
    # rediss:// is accepted without connecting at construction time.
    tls = lock_backend_from_url("rediss://:secret@127.0.0.1:6380/0")
    assert isinstance(tls, RedisLockBackend)
    tls.close()


def test_url_picks_memory_one_store_per_name() -> None:
    url = memory_url()
    first, same = lock_backend_from_url(url), lock_backend_from_url(f" {url}/ ")
    other = lock_backend_from_url(memory_url())
    assert isinstance(first, MemoryLockBackend) and "this process only" in first.where
    lease = first.acquire("lines", token(), LONG_TTL)
    assert lease is not None
    # Backends of one URL share the locks, as clients of one Redis share its keys.
    assert same.acquire("lines", token(), LONG_TTL) is None
    assert same.info("lines").owner == lease.owner
    assert same.release(lease)
    # Another name is another store.
    assert other.info("lines").fence == 0
    assert other.acquire("lines", token(), LONG_TTL) is not None


def test_workers_refuse_a_memory_lock() -> None:
    """One process's locks cannot keep a worker pool's processes apart."""
    env = {"CHROMASYNC_LOCK_URL": "memory://locks", "CHROMASYNC_METRICS_URL": "off"}
    with pytest.raises(ConfigError, match="CHROMASYNC_LOCK_URL='memory://locks'.*one process"):
        check_settings(env)


def test_url_picks_dynamodb_and_creates_nothing(moto: MotoServer) -> None:
    aws = aws_for(moto.url)
    backend = lock_backend_from_url(f"dynamodb://{TABLE}", aws=aws)
    assert isinstance(backend, DynamoDBLockBackend)
    assert backend.table == TABLE
    client = boto3.client("dynamodb", **aws.client_kwargs())
    with pytest.raises(MissingResource, match=f"DynamoDB table '{TABLE}' does not exist") as gone:
        backend.acquire("lines", token(), LONG_TTL)
    assert "chromasync provision" in str(gone.value)
    assert TABLE not in client.list_tables()["TableNames"]
    # Provisioning makes it, with the schema the backend uses; then the lock works.
    ensure_lock_table(aws, TABLE)
    table = client.describe_table(TableName=TABLE)["Table"]
    assert table["KeySchema"] == [{"AttributeName": "lock_name", "KeyType": "HASH"}]
    assert table["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"
    assert backend.acquire("lines", token(), LONG_TTL) is not None
    backend.close()
    client.close()


@pytest.mark.parametrize(
    "url",
    [
        "",
        "locks",
        "memcached://127.0.0.1:11211",
        "http://127.0.0.1:8000",
        "dynamodb://",
        "dynamodb:///",
        "dynamodb://ab",
        "dynamodb://table/extra",
        "dynamodb://bad*name",
        "redis://",
        "memory://",
        "memory://store/extra",
        "memory://store?x=1",
        "memory://a*b",
    ],
)
def test_url_rejects_bad_urls(url: str) -> None:
    with pytest.raises(ConfigError, match="CHROMASYNC_LOCK_URL") as raised:
        lock_backend_from_url(url, aws=aws_for("http://127.0.0.1:1"))
    message = str(raised.value)
    assert "redis://" in message and "dynamodb://TABLE" in message and "memory://NAME" in message


def test_url_error_hides_password() -> None:
    with pytest.raises(ConfigError) as raised:
        lock_backend_from_url("memcached://user:hunter2@cache:11211")
    assert "hunter2" not in str(raised.value)
    assert "user:***@cache:11211" in str(raised.value)


# -- unreachable stores --------------------------------------------------------------------


@dataclass(frozen=True)
class Unreachable:
    """A backend whose store does not answer, how it is named, how soon it must fail."""

    backend: LockBackend
    address: str
    within: float
    #: The client's own error, kept as the cause.
    cause: type[BaseException]


def unreachable_redis() -> Unreachable:
    port = free_port()
    backend = RedisLockBackend(f"redis://:hunter2@127.0.0.1:{port}/0", socket_timeout=1.0)
    return Unreachable(backend, f"127.0.0.1:{port}", 5, redis.ConnectionError)


def unreachable_dynamodb() -> Unreachable:
    endpoint = f"http://127.0.0.1:{free_port()}"
    config = Config(connect_timeout=1, read_timeout=1, retries={"max_attempts": 1})
    backend = DynamoDBLockBackend(TABLE, aws_for(endpoint), config=config)
    return Unreachable(backend, endpoint, 10, EndpointConnectionError)


@pytest.mark.parametrize("unreachable", [unreachable_redis, unreachable_dynamodb])
def test_an_unreachable_store_fails_soon_naming_it(
    unreachable: Callable[[], Unreachable],
) -> None:
    store = unreachable()
    backend = store.backend
    started = time.monotonic()
    with pytest.raises(LockBackendError) as raised:
        backend.acquire("lines", token(), LONG_TTL)
    assert time.monotonic() - started < store.within
    message = str(raised.value)
    assert "unreachable" in message
    assert store.address in message
    assert "hunter2" not in message
    assert isinstance(raised.value.__cause__, store.cause)
    for call in (
        lambda: backend.info("lines"),
        lambda: backend.release(Lease("lines", "x", LONG_TTL, 1)),
        lambda: backend.extend(Lease("lines", "x", LONG_TTL, 1), LONG_TTL),
    ):
        with pytest.raises(LockBackendError):
            call()
    backend.close()


def test_missing_dynamodb_table_is_reported(moto: MotoServer) -> None:
    backend = DynamoDBLockBackend("no-such-table", aws_for(moto.url))
    for call in (
        lambda: backend.acquire("lines", token(), LONG_TTL),
        lambda: backend.info("lines"),
        lambda: backend.release(Lease("lines", "x", LONG_TTL, 1)),
    ):
        with pytest.raises(MissingResource, match="'no-such-table' does not exist.*provision"):
            call()
    backend.close()


@pytest.mark.parametrize(
    "code",
    [
        "ProvisionedThroughputExceededException",
        "ThrottlingException",
        "RequestLimitExceeded",
        "InternalServerError",
    ],
)
def test_dynamodb_throttling_is_transient(code: str) -> None:
    # Moto never throttles, so the answer is stubbed; retries off so one stub suffices.
    backend = DynamoDBLockBackend(
        TABLE,
        aws_for(f"http://127.0.0.1:{free_port()}"),
        config=Config(retries={"max_attempts": 1}),
    )
    with Stubber(backend._client) as stub:
        stub.add_client_error("update_item", service_error_code=code, http_status_code=400)
        with pytest.raises(LockBackendError, match=code):
            backend.acquire("lines", token(), LONG_TTL)
    backend.close()
