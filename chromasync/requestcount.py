"""Counting what AWS would bill: requests per service and operation, read and write units.

An opt-in WSGI middleware of our moto wrapper (``python -m chromasync.motoserver
--count-requests``, or ``CHROMASYNC_MOTO_COUNT_REQUESTS=1`` in its environment).
The AWS cost model (:mod:`benchmarks.cost`) needs the requests a workload really
makes, not a count worked out by hand from the code, so the server that answers
them counts them. ``GET /_chromasync/requests`` answers the counts as JSON;
``POST /_chromasync/requests/reset`` answers them and starts again from zero (one
step, so nothing counted between a read and a reset is lost).

What is counted, per (service, operation, resource):

* the service from ``X-Amz-Target`` (DynamoDB, DynamoDB Streams, SQS's JSON
  protocol), else from the SigV4 credential scope of ``Authorization`` (S3, SQS's
  query protocol); requests without either (moto's own API) are not counted;
* the operation from ``X-Amz-Target``, else the query protocol's ``Action``, else
  for S3 the method and whether it names an object or a bucket (``GET object``);
* the resource: the DynamoDB table, the SQS queue's name, the S3 bucket;
* DynamoDB read request units as DynamoDB meters them: per item, 1 per 4 KB (rounded
  up) for GetItem and BatchGetItem, the items' total rounded up to 4 KB for Query and
  Scan, one unit for a key that holds nothing; halved for an eventually consistent
  read, doubled in a transaction. Sizes follow DynamoDB's published item-size rules
  (:func:`item_size`; numbers approximately). A Query or Scan with a filter or a
  projection is billed for every item it *read*, which the answer does not show: the
  counter asks moto again without them and measures that answer;
* DynamoDB write request units: 1 per KB of a put item (rounded up); an UpdateItem or
  a DeleteItem is counted as 1, which holds for items under 1 KB (a lock, a checkpoint)
  and undercounts larger ones; in a transaction, doubled. A write refused by its
  condition is counted too, as DynamoDB bills it;
* for SQS, the payload bytes (bodies and message attributes) of SendMessage,
  SendMessageBatch and ReceiveMessage, the messages each carried, receives that found
  nothing (``empty``), and the requests SQS bills: one per 64 KB chunk of payload.
"""

from __future__ import annotations

import base64
import binascii
import io
import json
import math
import re
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import Any
from urllib.parse import parse_qs

#: Path of the counts: GET answers them, POST ``.../reset`` answers them and zeroes them.
COUNTS_PATH = "/_chromasync/requests"
#: Environment variable that turns counting on when the server starts.
COUNT_ENV = "CHROMASYNC_MOTO_COUNT_REQUESTS"

#: DynamoDB meters reads in 4 KB steps and writes in 1 KB steps (on-demand and provisioned).
READ_UNIT_BYTES = 4096
WRITE_UNIT_BYTES = 1024
#: SQS bills each 64 KB chunk of a request's payload as one request.
SQS_CHUNK_BYTES = 65536

_TARGETS = (
    ("DynamoDBStreams_", "dynamodbstreams"),
    ("DynamoDB_", "dynamodb"),
    ("AmazonSQS.", "sqs"),
)
_SCOPE = re.compile(r"Credential=[^/]+/\d{8}/[^/]+/([^/]+)/aws4_request")

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


@dataclass
class Tally:
    """What one (service, operation, resource) has cost so far."""

    requests: int = 0
    #: Answers with an HTTP status of 400 or more.
    errors: int = 0
    read_units: float = 0.0
    write_units: float = 0.0
    #: SQS: message bodies and attributes sent or received.
    payload_bytes: int = 0
    #: SQS: messages sent, received or deleted.
    messages: int = 0
    #: SQS: receives that found no message.
    empty: int = 0
    #: Requests as the service bills them (SQS: one per 64 KB chunk of payload).
    billed_requests: int = 0


# -- sizes ---------------------------------------------------------------------------------


def _number_size(text: str) -> int:
    """DynamoDB: about one byte per two significant digits, plus one."""
    digits = text.lstrip("-").replace(".", "").split("e")[0].split("E")[0].strip("0")
    return (len(digits) + 1) // 2 + 1


def _binary_size(text: str) -> int:
    try:
        return len(base64.b64decode(text, validate=False))
    except (binascii.Error, ValueError):
        return len(text)


def value_size(value: Mapping[str, Any]) -> int:
    """Bytes DynamoDB counts for one typed attribute value (wire form: ``{"S": "x"}``)."""
    ((kind, data),) = value.items()
    if kind == "S":
        return len(str(data).encode())
    if kind == "N":
        return _number_size(str(data))
    if kind == "B":
        return _binary_size(str(data))
    if kind in ("BOOL", "NULL"):
        return 1
    if kind == "SS":
        return sum(len(str(s).encode()) for s in data)
    if kind == "NS":
        return sum(_number_size(str(n)) for n in data)
    if kind == "BS":
        return sum(_binary_size(str(b)) for b in data)
    if kind == "L":
        return 3 + sum(1 + value_size(v) for v in data)
    if kind == "M":
        return 3 + sum(1 + len(k.encode()) + value_size(v) for k, v in data.items())
    return len(json.dumps(data))


def item_size(item: Mapping[str, Any] | None) -> int:
    """An item's size as DynamoDB meters it: attribute names plus values."""
    if not item:
        return 0
    return sum(len(name.encode()) + value_size(value) for name, value in item.items())


def _read_units(size: int) -> int:
    return max(1, math.ceil(size / READ_UNIT_BYTES))


def _write_units(size: int) -> int:
    return max(1, math.ceil(size / WRITE_UNIT_BYTES))


# -- DynamoDB ------------------------------------------------------------------------------

#: Members of a Query or Scan that change what it returns but not what it reads.
_NOT_METERED = ("FilterExpression", "ProjectionExpression", "Select", "AttributesToGet")
_PLACEHOLDER = re.compile(r"[#:][A-Za-z0-9_]+")


def _read_everything(request: Mapping[str, Any]) -> dict[str, Any] | None:
    """The same Query or Scan without its filter and projection, or None if it has neither."""
    if not any(k in request for k in _NOT_METERED):
        return None
    bare = {k: v for k, v in request.items() if k not in _NOT_METERED}
    used = set(_PLACEHOLDER.findall(str(bare.get("KeyConditionExpression", ""))))
    for member in ("ExpressionAttributeNames", "ExpressionAttributeValues"):
        kept = {k: v for k, v in (bare.pop(member, None) or {}).items() if k in used}
        if kept:
            bare[member] = kept
    return bare


def dynamodb_units(
    operation: str, request: Mapping[str, Any], response: Mapping[str, Any]
) -> tuple[float, float]:
    """(read units, write units) of one successful DynamoDB request."""
    factor = 1.0 if request.get("ConsistentRead") else 0.5
    if operation == "GetItem":
        return _read_units(item_size(response.get("Item"))) * factor, 0.0
    if operation in ("Query", "Scan"):
        size = sum(item_size(i) for i in response.get("Items", []))
        return _read_units(size) * factor, 0.0
    if operation == "BatchGetItem":
        units = 0.0
        for table, spec in request.get("RequestItems", {}).items():
            found = response.get("Responses", {}).get(table, [])
            left = response.get("UnprocessedKeys", {}).get(table, {}).get("Keys", [])
            missing = max(0, len(spec.get("Keys", [])) - len(found) - len(left))
            per = 1.0 if spec.get("ConsistentRead") else 0.5
            units += per * (sum(_read_units(item_size(i)) for i in found) + missing)
        return units, 0.0
    if operation == "TransactGetItems":
        found = [r.get("Item") for r in response.get("Responses", [])]
        return 2.0 * sum(_read_units(item_size(i)) for i in found), 0.0
    return 0.0, dynamodb_write_units(operation, request)


def _write_request_units(write: Mapping[str, Any]) -> int:
    if "Put" in write or "PutRequest" in write:
        put = write.get("Put") or write.get("PutRequest") or {}
        return _write_units(item_size(put.get("Item")))
    return 1  # Update, Delete, ConditionCheck: items under 1 KB


def dynamodb_write_units(operation: str, request: Mapping[str, Any]) -> float:
    """Write units of a DynamoDB write (0 for any other operation); see the module docstring."""
    if operation == "PutItem":
        return float(_write_units(item_size(request.get("Item"))))
    if operation in ("UpdateItem", "DeleteItem"):
        return 1.0
    if operation == "BatchWriteItem":
        writes = [w for ws in request.get("RequestItems", {}).values() for w in ws]
        return float(sum(_write_request_units(w) for w in writes))
    if operation == "TransactWriteItems":
        return 2.0 * sum(_write_request_units(w) for w in request.get("TransactItems", []))
    return 0.0


def dynamodb_resource(operation: str, request: Mapping[str, Any]) -> str:
    """The table a request names (tables, comma-separated, for a batch; "" for none)."""
    if "TableName" in request:
        return str(request["TableName"])
    if "RequestItems" in request:
        return ",".join(sorted(request["RequestItems"]))
    arn = str(request.get("StreamArn", ""))
    return arn.split("/")[1] if arn.count("/") >= 2 else ""


# -- SQS -----------------------------------------------------------------------------------


def _attributes_size(attributes: Mapping[str, Any] | None) -> int:
    size = 0
    for name, value in (attributes or {}).items():
        size += len(name.encode()) + len(str(value.get("DataType", "")).encode())
        size += len(str(value.get("StringValue", "")).encode())
        if value.get("BinaryValue"):
            size += _binary_size(str(value["BinaryValue"]))
    return size


def _message_size(message: Mapping[str, Any]) -> int:
    body = message.get("MessageBody", message.get("Body", ""))
    return len(str(body).encode()) + _attributes_size(message.get("MessageAttributes"))


def _query_params(body: bytes) -> dict[str, Any]:
    """A query-protocol SQS request as the JSON protocol would send it (the members we read)."""
    flat = {k: v[0] for k, v in parse_qs(body.decode(errors="replace")).items()}
    params: dict[str, Any] = {k: v for k, v in flat.items() if "." not in k}
    for prefix in ("SendMessageBatchRequestEntry", "DeleteMessageBatchRequestEntry"):
        ids = sorted({k.split(".")[1] for k in flat if k.startswith(prefix + ".")}, key=int)
        if ids:
            params["Entries"] = [
                {"MessageBody": flat.get(f"{prefix}.{n}.MessageBody", "")} for n in ids
            ]
    return params


_XML_BODY = re.compile(rb"<Body>(.*?)</Body>", re.S)


def _received(response_body: bytes) -> list[int]:
    """Sizes of the messages a ReceiveMessage answer carries (JSON or XML protocol)."""
    text = response_body.strip()
    if text.startswith(b"{"):
        return [_message_size(m) for m in json.loads(text).get("Messages", [])]
    return [len(b) for b in _XML_BODY.findall(text)]


def sqs_tally(
    tally: Tally, operation: str, request: Mapping[str, Any], response_body: bytes
) -> None:
    """Add one SQS request's payload, messages and billed requests to ``tally``."""
    payload, messages = 0, 0
    if operation == "SendMessage":
        payload, messages = _message_size(request), 1
    elif operation == "SendMessageBatch":
        entries = request.get("Entries", [])
        payload, messages = sum(_message_size(e) for e in entries), len(entries)
    elif operation == "ReceiveMessage":
        sizes = _received(response_body)
        payload, messages = sum(sizes), len(sizes)
        tally.empty += not sizes
    elif operation == "DeleteMessage":
        messages = 1
    elif operation == "DeleteMessageBatch":
        messages = len(request.get("Entries", []))
    tally.payload_bytes += payload
    tally.messages += messages
    tally.billed_requests += max(1, math.ceil(payload / SQS_CHUNK_BYTES))


def sqs_resource(request: Mapping[str, Any]) -> str:
    url = str(request.get("QueueUrl", ""))
    return url.rstrip("/").rsplit("/", 1)[-1] if url else str(request.get("QueueName", ""))


# -- the middleware ------------------------------------------------------------------------


def service_of(environ: Mapping[str, Any]) -> str | None:
    target = str(environ.get("HTTP_X_AMZ_TARGET", ""))
    for prefix, service in _TARGETS:
        if target.startswith(prefix):
            return service
    found = _SCOPE.search(str(environ.get("HTTP_AUTHORIZATION", "")))
    return found.group(1) if found else None


def _s3_operation(environ: Mapping[str, Any]) -> tuple[str, str]:
    """(``METHOD object|bucket``, bucket) of a path-style S3 request."""
    parts = str(environ.get("PATH_INFO", "")).lstrip("/").split("/", 1)
    on = "object" if len(parts) > 1 and parts[1] else "bucket"
    return f"{environ.get('REQUEST_METHOD', 'GET')} {on}", parts[0]


class RequestCounter:
    """WSGI middleware: counts requests, units and SQS payloads; answers :data:`COUNTS_PATH`."""

    def __init__(self, app: WSGIApp) -> None:
        self.app = app
        self.lock = threading.Lock()
        self.tallies: dict[tuple[str, str, str], Tally] = {}
        self.since = time.time()

    def snapshot(self, reset: bool = False) -> dict[str, Any]:
        """The counts as JSON; ``reset`` zeroes them in the same step."""
        with self.lock:
            entries = [
                {"service": s, "operation": o, "resource": r, **asdict(t)}
                for (s, o, r), t in sorted(self.tallies.items())
            ]
            until = time.time()
            answer = {"since": self.since, "until": until, "entries": entries}
            if reset:
                self.tallies = {}
                self.since = until
        return answer

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        path = str(environ.get("PATH_INFO", ""))
        if path.startswith(COUNTS_PATH):
            reset = environ.get("REQUEST_METHOD") == "POST" and path.endswith("/reset")
            body = json.dumps(self.snapshot(reset)).encode()
            start_response("200 OK", [("Content-Type", "application/json")])
            return [body]
        service = service_of(environ)
        if service is None:
            return self.app(environ, start_response)
        request_body = b""
        if service != "s3":  # S3 bodies may be large or chunk-encoded, and are not needed
            length = int(environ.get("CONTENT_LENGTH") or 0)
            request_body = environ["wsgi.input"].read(length) if length else b""
            environ["wsgi.input"] = io.BytesIO(request_body)
        status: list[str] = []

        def remember(code: str, headers: Any, exc_info: Any = None) -> Any:
            status.append(code)
            if exc_info is not None:
                return start_response(code, headers, exc_info)
            return start_response(code, headers)

        response_body = b"".join(self.app(environ, remember))
        try:
            self._count(service, environ, request_body, response_body, status)
        except Exception:  # noqa: BLE001 - counting must never break the answer
            self._add((service, "uncountable", ""), Tally(requests=1))
        return [response_body]

    def _count(
        self,
        service: str,
        environ: dict[str, Any],
        request_body: bytes,
        response_body: bytes,
        status: list[str],
    ) -> None:
        failed = bool(status) and int(status[0].split()[0]) >= 400
        tally = Tally(requests=1, errors=int(failed))
        target = str(environ.get("HTTP_X_AMZ_TARGET", ""))
        if service == "s3":
            operation, resource = _s3_operation(environ)
        elif target:
            operation = target.rsplit(".", 1)[-1]
            request = json.loads(request_body or b"{}")
            resource = (
                dynamodb_resource(operation, request)
                if service.startswith("dynamodb")
                else sqs_resource(request)
            )
            if not failed:
                self._json_request(service, environ, request, response_body, tally)
            elif service == "dynamodb" and b"ConditionalCheckFailed" in response_body:
                tally.write_units = dynamodb_write_units(operation, request)
        else:
            request = _query_params(request_body)
            operation = str(request.get("Action", "unknown"))
            resource = sqs_resource(request) if service == "sqs" else ""
            if service == "sqs" and not failed:
                sqs_tally(tally, operation, request, response_body)
        tally.billed_requests = tally.billed_requests or 1
        self._add((service, operation, resource), tally)

    def _json_request(
        self,
        service: str,
        environ: dict[str, Any],
        request: dict[str, Any],
        response_body: bytes,
        tally: Tally,
    ) -> None:
        operation = str(environ.get("HTTP_X_AMZ_TARGET", "")).rsplit(".", 1)[-1]
        if service == "sqs":
            sqs_tally(tally, operation, request, response_body)
        elif service == "dynamodb":
            response = json.loads(response_body or b"{}")
            if operation in ("Query", "Scan"):
                response = self._unfiltered(environ, request) or response
            tally.read_units, tally.write_units = dynamodb_units(operation, request, response)

    def _unfiltered(
        self, environ: Mapping[str, Any], request: Mapping[str, Any]
    ) -> dict[str, Any] | None:
        """The answer to the request without filter or projection (what DynamoDB bills)."""
        bare = _read_everything(request)
        if bare is None:
            return None
        body = json.dumps(bare).encode()
        again = {**environ, "wsgi.input": io.BytesIO(body), "CONTENT_LENGTH": str(len(body))}
        codes: list[str] = []
        answer = b"".join(self.app(again, lambda code, headers, *_: codes.append(code)))
        if not codes or not codes[0].startswith("200"):
            return None
        parsed: dict[str, Any] = json.loads(answer)
        return parsed

    def _add(self, key: tuple[str, str, str], tally: Tally) -> None:
        with self.lock:
            total = self.tallies.setdefault(key, Tally())
            for name, value in asdict(tally).items():
                setattr(total, name, getattr(total, name) + value)
