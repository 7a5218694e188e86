"""Probes of the services a deployment uses, shared by ``chromasync status`` and the exporter.

Each probe asks one service (SQS, the lock store, the metrics Redis) with
short timeouts, so a screen or a scrape answers quickly even when a service
is down; :func:`probe` turns a failure into an :class:`Unreachable` line that
names the service, instead of a traceback.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from chromasync.core.config import Settings
    from tasks.config import WorkerSettings
    from tasks.locks.backend import LockBackend, LockInfo
    from tasks.metrics.store import MetricsStore
    from tasks.progress.backend import AppliedBatch, ProgressStore

#: Seconds to connect to / wait for any service; status must answer quickly.
PROBE_TIMEOUT = 2.0

T = TypeVar("T")


@dataclass
class Unreachable:
    """A service that did not answer, and why, in words an operator can act on."""

    service: str
    error: str

    def line(self) -> str:
        named = self.error.startswith(self.service)
        return f"UNREACHABLE  {self.error if named else f'{self.service}: {self.error}'}"


def _error_text(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0][:300]


def probe(service: str, call: Callable[[], T]) -> T | Unreachable:
    """Run one probe; a failure becomes an :class:`Unreachable` naming the service.

    A wrong setting is not an outage: :class:`ConfigError` goes up (exit status 2).
    """
    from chromasync.core.config import ConfigError

    try:
        return call()
    except ConfigError:
        raise
    except Exception as exc:  # noqa: BLE001 - reported as a line, never a traceback
        return Unreachable(service, _error_text(exc))


def probe_config() -> Any:
    """botocore settings for a probe: short timeouts, one retry (status must answer quickly)."""
    from botocore.config import Config

    return Config(
        connect_timeout=PROBE_TIMEOUT,
        read_timeout=PROBE_TIMEOUT * 2,
        retries={"mode": "standard", "max_attempts": 2},
    )


def sqs_client(settings: Settings) -> Any:
    import boto3

    return boto3.client("sqs", config=probe_config(), **settings.aws.client_kwargs())


def sqs_where(settings: Settings) -> str:
    return f"SQS at {settings.aws.endpoint_url or f'AWS {settings.aws.region}'}"


def lock_backend(settings: WorkerSettings) -> tuple[LockBackend, str]:
    """A read-only view of the lock store, and its name."""
    from tasks.locks import lock_backend_from_url

    backend = lock_backend_from_url(
        settings.lock_url,
        settings.shared.aws,
        probe_timeout=PROBE_TIMEOUT,
        config=probe_config(),
    )
    return backend, backend.where


def _missing_table(exc: BaseException) -> bool:
    """A DynamoDB lock table that does not exist yet: no worker ever ran, not an outage."""
    cause: BaseException | None = exc
    while cause is not None:
        response = getattr(cause, "response", None)
        if isinstance(response, dict):
            return response.get("Error", {}).get("Code") == "ResourceNotFoundException"
        cause = cause.__cause__
    return False


def _per_collection(
    collections: Sequence[str], read: Callable[[str], T | None]
) -> dict[str, T | None]:
    """``read`` of each collection; None where the DynamoDB table is not there yet."""
    out: dict[str, T | None] = {}
    for collection in collections:
        try:
            out[collection] = read(collection)
        except Exception as exc:
            if not _missing_table(exc):
                raise
            out[collection] = None
    return out


def lock_infos(backend: LockBackend, collections: Sequence[str]) -> dict[str, LockInfo | None]:
    """Holder and lease of each collection's lock; None when the lock table is not there yet."""
    from tasks.lease import lock_name

    return _per_collection(collections, lambda collection: backend.info(lock_name(collection)))


def progress_store(settings: WorkerSettings) -> ProgressStore:
    from tasks.progress.factory import progress_store_from_url

    return progress_store_from_url(
        settings.lock_url, settings.shared.aws, PROBE_TIMEOUT, probe_config()
    )


def last_applied(
    store: ProgressStore, collections: Sequence[str]
) -> dict[str, AppliedBatch | None]:
    return _per_collection(collections, store.last)


def metrics_store() -> MetricsStore | None:
    from tasks.metrics.store import MetricsStore

    return MetricsStore.from_env()
