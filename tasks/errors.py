"""Which failures are worth retrying.

Transient: the lock is busy or was lost, or Redis, DynamoDB, S3, SQS or
Chroma could not be reached, throttled us or answered 5xx. Everything else
(a payload that fails validation, a queue, table or bucket that was never
provisioned, a bug) is permanent and goes to the dead-letter queue.
"""

from __future__ import annotations

import sys

from chromasync.core.resources import DeploymentError, is_unreachable
from chromasync.core.resources import error_code as aws_error_code
from tasks.chroma.target import ChromaUnavailable
from tasks.lease import LeaseLost, LockBusy
from tasks.locks.backend import LockBackendError

__all__ = [
    "RETRY_HTTP_STATUSES",
    "THROTTLING_CODES",
    "DeltaNotReady",
    "EmbeddingMissing",
    "ContractViolation",
    "aws_error_code",
    "is_transient",
]

#: AWS error codes that mean "slow down / try again".
THROTTLING_CODES = frozenset(
    {
        "ProvisionedThroughputExceededException",
        "ThrottlingException",
        "Throttling",
        "RequestLimitExceeded",
        "InternalServerError",
        "InternalError",
        "ServiceUnavailable",
        "SlowDown",
        "RequestTimeout",
        "TransactionInProgressException",
    }
)


#: HTTP statuses of a Chroma server worth retrying: overloaded, failing or restarting.
RETRY_HTTP_STATUSES = frozenset({429, 500, 502, 503, 504})


class DeltaNotReady(ConnectionError):
    """Nothing (usable) under a run's delta prefix yet; the upload may still be on its way.

    The writer sets its run's change aside to wait, like a change whose
    embedding is missing, and applies the rest of the batch. Raised anywhere
    else it is a ``ConnectionError``: :func:`is_transient` retries it.
    """


class ContractViolation(ValueError):
    """One change of a batch does not fit the message contract (permanent)."""


class EmbeddingMissing(RuntimeError):
    """A change's embedding is not in Chroma yet (its delta is not merged yet)."""


def is_transient(exc: BaseException) -> bool:
    if isinstance(exc, DeploymentError):
        return False  # no retry provisions or grants anything; the letter says what to do
    if isinstance(exc, LockBusy | LeaseLost | LockBackendError | ChromaUnavailable):
        return True
    if is_unreachable(exc):
        return True
    import botocore.exceptions as bex

    if isinstance(exc, bex.ClientError):
        return aws_error_code(exc) in THROTTLING_CODES
    try:
        import redis

        if isinstance(exc, redis.ConnectionError | redis.TimeoutError):
            return True
    except ImportError:  # pragma: no cover
        pass
    try:
        import httpx

        if isinstance(exc, httpx.TransportError):
            return True
        if isinstance(exc, httpx.HTTPStatusError):
            return exc.response.status_code in RETRY_HTTP_STATUSES
    except ImportError:  # pragma: no cover
        pass
    # A Chroma server's answer (HttpClient); only looked for once chromadb is loaded,
    # so the CLI's error path does not import it.
    chroma_errors = sys.modules.get("chromadb.errors")
    if chroma_errors is not None and isinstance(exc, chroma_errors.ChromaError):
        return exc.code() in RETRY_HTTP_STATUSES
    # Chroma's HTTP client wraps connection failures in its own errors.
    text = f"{type(exc).__name__}: {exc}".lower()
    return any(s in text for s in ("connection refused", "connecterror", "could not connect"))
