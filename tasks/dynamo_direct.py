"""The worker's table reads as plain signed HTTP: botocore's per-call machinery left out.

A single-embedding change costs the worker one consistent read of the table (its
word's labels), and one botocore call costs about 1 ms of CPU before DynamoDB
answers: a dozen event hooks, request serialisation and validation, the signer's
generic canonicalisation, the retry handler, urllib3 and the response parser.
Chroma applies an embedding for about 0.2 ms, so those calls were most of the
worker's CPU per embedding (BENCHMARKS.md, "CPU per embedding"). This client
sends the same requests itself: JSON in, ``json.loads`` out, Signature Version 4
computed here over the five headers it sends (the signing key cached per day and
secret), one keep-alive connection per thread (:mod:`tasks.keepalive`: the
request in one write, the answer read without ``http.client``'s header parser).

What it keeps of botocore: credentials (the session's own chain, refreshed as
botocore refreshes them: environment, profile, container or instance role), the
endpoint botocore resolves for the region (or the one configured), and the
answer's ``x-amz-crc32`` check (a mismatch is tried again, as botocore does), and the
errors: a DynamoDB error is the client's modelled ``ClientError`` with the
response botocore would build (``Error.Code``, ``Error.Message``, the HTTP
status), a connection that fails is Python's ``ConnectionError`` or
``TimeoutError``, so :func:`tasks.errors.is_transient` and
``naming_missing_table`` treat them as they treat botocore's.

What it leaves out: proxies (with ``HTTPS_PROXY``/``HTTP_PROXY`` set for the
endpoint, :func:`tasks.dynamo_reads.read_client` gives botocore's client instead)
and botocore's client-side parameter validation (every request comes from
:class:`tasks.sources.TableReader`; DynamoDB refuses a malformed one anyway).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import random
import re
import ssl
import threading
import time
import zlib
from typing import Any, Final
from urllib.parse import urlsplit

from tasks.keepalive import KeepAliveConnection

#: The JSON protocol's target prefix and content type (DynamoDB's API version).
TARGET_PREFIX: Final = "DynamoDB_20120810."
CONTENT_TYPE: Final = "application/x-amz-json-1.0"
SERVICE: Final = "dynamodb"
#: Tries per read on a throttle, a 5xx, a corrupted answer or a dropped connection,
#: before the error goes to the caller (the task's own retry with backoff takes over).
ATTEMPTS: Final = 3
#: First pause, in seconds, between tries; doubled each time, with jitter.
BACKOFF: Final = 0.05
#: Seconds to connect and to wait for an answer (botocore's defaults are 60 and 60;
#: a consistent read that takes longer than this is better retried).
CONNECT_TIMEOUT: Final = 10.0
READ_TIMEOUT: Final = 60.0
#: Error codes worth another try at once (throttling, DynamoDB's own 5xx).
RETRY_CODES: Final = frozenset(
    {
        "ProvisionedThroughputExceededException",
        "ThrottlingException",
        "RequestLimitExceeded",
        "InternalServerError",
        "ServiceUnavailable",
    }
)
#: A binary attribute value may be in a body that holds this (decoded from base64).
_MAY_HOLD_BINARY: Final = re.compile(rb'"BS?"\s*:')


class CorruptedAnswer(ConnectionError):
    """An answer whose body does not match the CRC32 DynamoDB sent with it.

    botocore checks ``x-amz-crc32`` on every DynamoDB answer and tries again on a
    mismatch; so does this client, and when every try is corrupted the read fails
    as a transient connection error (the task retries it), never with a wrong body.
    """


class DirectReadClient:
    """``get_item``, ``query``, ``batch_get_item`` and ``scan`` answering as boto3's do.

    ``botocore_client``: a DynamoDB client for the same endpoint, of the session
    ``credentials`` come from; only its endpoint, region and modelled exceptions
    are used (:func:`tasks.dynamo_reads.read_client` builds both).
    """

    def __init__(self, botocore_client: Any, credentials: Any) -> None:
        self.meta = botocore_client.meta
        self.exceptions = botocore_client.exceptions
        #: botocore's credentials (None: none found; each call then raises as botocore does).
        self._credentials = credentials
        self.region: str = botocore_client.meta.region_name
        url = urlsplit(botocore_client.meta.endpoint_url)
        self._https = url.scheme == "https"
        self._host = url.netloc
        self._hostname = url.hostname or "localhost"
        self._port = url.port or (443 if self._https else 80)
        self._path = url.path or "/"
        self._local = threading.local()
        self._keys: tuple[tuple[str, str], bytes] | None = None
        self._ssl: ssl.SSLContext | None = None
        if self._https:
            self._ssl = ssl.create_default_context(cafile=os.environ.get("AWS_CA_BUNDLE") or None)

    # -- the operations the reader uses ------------------------------------------------

    def get_item(self, **request: Any) -> dict[str, Any]:
        return self._call("GetItem", request)

    def query(self, **request: Any) -> dict[str, Any]:
        return self._call("Query", request)

    def batch_get_item(self, **request: Any) -> dict[str, Any]:
        return self._call("BatchGetItem", request)

    def scan(self, **request: Any) -> dict[str, Any]:
        return self._call("Scan", request)

    # -- one call ----------------------------------------------------------------------

    def _call(self, operation: str, request: dict[str, Any]) -> dict[str, Any]:
        body = json.dumps(request, separators=(",", ":"), default=_encode_binary).encode()
        attempt = 0
        while True:
            last = attempt == ATTEMPTS - 1
            reused = getattr(self._local, "connection", None) is not None
            try:
                status, request_id, raw = self._send(operation, body)
            except CorruptedAnswer:
                if last:
                    raise
                attempt += 1  # as botocore does: another try, counted
                continue
            except TimeoutError:
                self._drop_connection()
                raise  # no answer in READ_TIMEOUT: the task's retry, not another wait here
            except OSError as exc:  # refused, reset, closed, TLS failed, not HTTP
                self._drop_connection()
                if reused:
                    continue  # a kept-alive connection the server had closed: not a try
                if not last:
                    attempt += 1
                    continue
                if isinstance(exc, ConnectionError):
                    raise
                raise ConnectionError(f"DynamoDB at {self._host}: {exc}") from exc
            if status == 200:
                answer: dict[str, Any] = json.loads(raw)
                if _MAY_HOLD_BINARY.search(raw):
                    answer = _decode_binary_answer(answer)
                answer["ResponseMetadata"] = {"HTTPStatusCode": status, "RequestId": request_id}
                return answer
            error = self._error(operation, status, request_id, raw)
            if last or not (status >= 500 or _code(error) in RETRY_CODES):
                raise error
            time.sleep(BACKOFF * 2**attempt * (0.5 + random.random()))
            attempt += 1

    def _send(self, operation: str, body: bytes) -> tuple[int, str, bytes]:
        headers = self._signed_headers(operation, body)
        head = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
        request = f"POST {self._path} HTTP/1.1\r\n{head}content-length: {len(body)}\r\n\r\n"
        connection = self._connection()
        status, answer_headers, raw = connection.exchange(request.encode() + body)
        if not connection.reusable:
            self._drop_connection()
        expected = answer_headers.get("x-amz-crc32", "")
        if expected.isdigit() and int(expected) != zlib.crc32(raw):
            self._drop_connection()
            raise CorruptedAnswer(
                f"DynamoDB at {self._host}: the answer to {operation} does not match its "
                f"x-amz-crc32 ({expected}, the body's is {zlib.crc32(raw)})"
            )
        return status, answer_headers.get("x-amzn-requestid", ""), raw

    def _error(self, operation: str, status: int, request_id: str, raw: bytes) -> Exception:
        try:
            parsed = json.loads(raw) if raw else {}
        except ValueError:
            parsed = {}
        code = str(parsed.get("__type", "")).rsplit("#", 1)[-1] or str(status)
        message = str(parsed.get("message", parsed.get("Message", "")))
        response = {
            "Error": {"Code": code, "Message": message},
            "ResponseMetadata": {"HTTPStatusCode": status, "RequestId": request_id},
        }
        error_class = self.exceptions.from_code(code)
        exc: Exception = error_class(response, operation)
        return exc

    # -- connections -------------------------------------------------------------------

    def _connection(self) -> KeepAliveConnection:
        connection: KeepAliveConnection | None = getattr(self._local, "connection", None)
        if connection is not None and getattr(self._local, "pid", None) != os.getpid():
            # The parent's socket, inherited by a fork: not ours to use, nor to close
            # (a TLS close would end the parent's session too).
            connection = self._local.connection = None
        if connection is None:
            connection = KeepAliveConnection(
                self._hostname, self._port, CONNECT_TIMEOUT, READ_TIMEOUT, self._ssl
            )
            self._local.connection = connection
            self._local.pid = os.getpid()
        return connection

    def _drop_connection(self) -> None:
        connection = getattr(self._local, "connection", None)
        self._local.connection = None
        if connection is not None:
            connection.close()

    # -- Signature Version 4 -----------------------------------------------------------

    def _signed_headers(self, operation: str, body: bytes) -> dict[str, str]:
        if self._credentials is None:
            from botocore.exceptions import NoCredentialsError

            raise NoCredentialsError()
        credentials = self._credentials.get_frozen_credentials()
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        headers = {
            "content-type": CONTENT_TYPE,
            "host": self._host,
            "x-amz-date": stamp,
            "x-amz-target": TARGET_PREFIX + operation,
        }
        if credentials.token:
            headers["x-amz-security-token"] = credentials.token
        ordered = sorted(headers)
        names = ";".join(ordered)
        canonical = "\n".join(
            (
                "POST",
                self._path,
                "",
                "".join(f"{name}:{headers[name]}\n" for name in ordered),
                names,
                hashlib.sha256(body).hexdigest(),
            )
        )
        scope = f"{stamp[:8]}/{self.region}/{SERVICE}/aws4_request"
        to_sign = "\n".join(
            ("AWS4-HMAC-SHA256", stamp, scope, hashlib.sha256(canonical.encode()).hexdigest())
        )
        key = self._signing_key(credentials.secret_key, stamp[:8])
        signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
        headers["authorization"] = (
            f"AWS4-HMAC-SHA256 Credential={credentials.access_key}/{scope}, "
            f"SignedHeaders={names}, Signature={signature}"
        )
        return headers

    def _signing_key(self, secret: str, day: str) -> bytes:
        """The day's key for this region and service (kept until the day or secret changes)."""
        cached = self._keys
        if cached is not None and cached[0] == (secret, day):
            return cached[1]
        key = ("AWS4" + secret).encode()
        for part in (day, self.region, SERVICE, "aws4_request"):
            key = hmac.new(key, part.encode(), hashlib.sha256).digest()
        self._keys = ((secret, day), key)
        return key


def _encode_binary(value: Any) -> str:
    """A binary attribute value of a request, base64 on the wire (as botocore sends it)."""
    if isinstance(value, (bytes, bytearray)):
        return base64.b64encode(value).decode()
    raise TypeError(f"a request value of type {type(value).__name__} is not JSON")


def _code(exc: Exception) -> str:
    return str(getattr(exc, "response", {}).get("Error", {}).get("Code", ""))


def _decode_binary(value: Any) -> Any:
    """One attribute value with its ``B``/``BS`` members base64-decoded, as botocore does."""
    if not isinstance(value, dict) or len(value) != 1:
        return value
    ((kind, inner),) = value.items()
    if kind == "B":
        return {"B": base64.b64decode(inner)}
    if kind == "BS":
        return {"BS": [base64.b64decode(v) for v in inner]}
    if kind == "L":
        return {"L": [_decode_binary(v) for v in inner]}
    if kind == "M":
        return {"M": {k: _decode_binary(v) for k, v in inner.items()}}
    return value


def _decode_item(item: dict[str, Any]) -> dict[str, Any]:
    return {name: _decode_binary(value) for name, value in item.items()}


def _decode_binary_answer(answer: dict[str, Any]) -> dict[str, Any]:
    """Items, keys and unprocessed keys of a read's answer with binary values decoded."""
    if "Item" in answer:
        answer["Item"] = _decode_item(answer["Item"])
    if "Items" in answer:
        answer["Items"] = [_decode_item(item) for item in answer["Items"]]
    if "LastEvaluatedKey" in answer:
        answer["LastEvaluatedKey"] = _decode_item(answer["LastEvaluatedKey"])
    for table, items in answer.get("Responses", {}).items():
        answer["Responses"][table] = [_decode_item(item) for item in items]
    for request in answer.get("UnprocessedKeys", {}).values():
        request["Keys"] = [_decode_item(key) for key in request.get("Keys", [])]
    return answer
