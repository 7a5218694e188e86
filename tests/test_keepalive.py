"""The worker's keep-alive HTTP connection against real servers on 127.0.0.1.

Each server here is a small ``http.server`` or a raw socket speaking one way of
framing or closing: what :class:`tasks.keepalive.KeepAliveConnection` must read,
and what :class:`tasks.dynamo_direct.DirectReadClient` must survive.
"""

from __future__ import annotations

import json
import socket
import threading
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from chromasync.core.config import AwsSettings
from tasks.dynamo_direct import CorruptedAnswer
from tasks.dynamo_reads import read_client
from tasks.errors import is_transient
from tasks.keepalive import KeepAliveConnection
from tasks.sources import WHOLE_RECEIPT, TableReader

ITEM = {"PK": {"S": "IMAGE#a"}, "SK": {"S": "RECEIPT#00001"}}
ANSWER = json.dumps({"Items": [ITEM], "Count": 1, "ScannedCount": 1}).encode()


class _Answering(BaseHTTPRequestHandler):
    """HTTP/1.1 keep-alive; ``chunked`` frames the body in chunks; ``close_after``
    closes the connection after that many answers on it, without saying so."""

    protocol_version = "HTTP/1.1"
    chunked = False
    close_after = 0
    #: Requests answered "throttled" (400) before the first 200.
    throttles = 0
    #: Answers sent with an ``x-amz-crc32`` their body does not match (then the right one).
    corrupt = 0
    #: (client port, request number on that connection) per request.
    seen: list[tuple[int, int]] = []

    def setup(self) -> None:
        super().setup()
        self.served = 0

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        self.rfile.read(int(self.headers["Content-Length"]))
        self.served += 1
        type(self).seen.append((self.client_address[1], self.served))
        if len(type(self).seen) <= type(self).throttles:
            raw = b'{"__type":"x#ThrottlingException","message":"slow down"}'
            self.send_response(400)
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)
            self.close_connection = bool(type(self).close_after)
            return
        self.send_response(200)
        self.send_header("Content-Type", "application/x-amz-json-1.0")
        self.send_header("x-amzn-RequestId", f"r{len(type(self).seen)}")
        wrong = len(type(self).seen) <= type(self).corrupt
        self.send_header("x-amz-crc32", str(zlib.crc32(ANSWER) ^ (1 if wrong else 0)))
        if type(self).chunked:
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for start in range(0, len(ANSWER), 7):
                part = ANSWER[start : start + 7]
                self.wfile.write(b"%x\r\n%s\r\n" % (len(part), part))
            self.wfile.write(b"0\r\n\r\n")
        else:
            self.send_header("Content-Length", str(len(ANSWER)))
            self.end_headers()
            self.wfile.write(ANSWER)
        if type(self).close_after and self.served >= type(self).close_after:
            self.close_connection = True

    def log_message(self, *args: Any) -> None:
        pass


@contextmanager
def _serving(
    chunked: bool = False, close_after: int = 0, throttles: int = 0, corrupt: int = 0
) -> Iterator[tuple[int, type[_Answering]]]:
    """The server's port and its handler class (whose ``seen`` lists the requests)."""
    handler = type(
        "Handler",
        (_Answering,),
        {
            "chunked": chunked,
            "close_after": close_after,
            "throttles": throttles,
            "corrupt": corrupt,
        },
    )
    handler.seen = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1], handler
    finally:
        server.shutdown()
        server.server_close()


def test_a_closed_kept_alive_connection_does_not_cost_a_try() -> None:
    # Throttled twice, the connection closed unannounced after each answer: the two
    # sends on a dead connection are not tries, so the third try is served.
    with _serving(close_after=1, throttles=2) as (port, handler):
        assert _query(_client(port))["Items"] == [ITEM]
    assert [n for _, n in handler.seen] == [1, 1, 1]


@pytest.mark.parametrize(("corrupt", "served"), [(2, True), (3, False)])
def test_an_answer_that_fails_its_crc32_is_asked_again(corrupt: int, served: bool) -> None:
    with _serving(corrupt=corrupt) as (port, handler):
        client = _client(port)
        if served:
            assert _query(client)["Items"] == [ITEM]
        else:
            with pytest.raises(CorruptedAnswer) as failed:
                _query(client)
            assert is_transient(failed.value) and "x-amz-crc32" in str(failed.value)
    assert len(handler.seen) == 3  # every try counted, none past the third


def _request(port: int) -> bytes:
    body = b"{}"
    return (
        f"POST / HTTP/1.1\r\nhost: 127.0.0.1:{port}\r\ncontent-length: {len(body)}\r\n\r\n"
    ).encode() + body


def _aws(port: int) -> AwsSettings:
    return AwsSettings(
        region="us-east-1",
        access_key_id="k",
        secret_access_key="s",
        endpoint_url=f"http://127.0.0.1:{port}",
    )


def _client(port: int) -> Any:
    return read_client(_aws(port))


def _query(client: Any) -> dict[str, Any]:
    answer: dict[str, Any] = client.query(
        TableName="t", KeyConditionExpression="PK = :pk", ExpressionAttributeValues={}
    )
    return answer


@pytest.mark.parametrize("chunked", [False, True])
def test_one_connection_serves_many_requests(chunked: bool) -> None:
    with _serving(chunked=chunked) as (port, handler):
        connection = KeepAliveConnection("127.0.0.1", port, 5, 5)
        try:
            answers = [connection.exchange(_request(port)) for _ in range(3)]
            assert connection.reusable
        finally:
            connection.close()
    assert [status for status, _, _ in answers] == [200, 200, 200]
    assert all(json.loads(body)["Items"] == [ITEM] for _, _, body in answers)
    assert answers[2][1]["x-amzn-requestid"] == "r3"
    assert [n for _, n in handler.seen] == [1, 2, 3]  # one connection, three requests


def test_the_read_client_keeps_its_connection_and_survives_a_closed_one() -> None:
    with _serving(close_after=2) as (port, handler):
        client = _client(port)
        for _ in range(5):
            assert _query(client)["Items"] == [ITEM]
    # Two answers per connection, then the server closed it unannounced: the client
    # found out on its next request and sent it again on a fresh connection.
    assert [n for _, n in handler.seen] == [1, 2, 1, 2, 1]
    assert len({p for p, _ in handler.seen}) == 3


@contextmanager
def _raw_server(answer: bytes) -> Iterator[int]:
    """A socket that reads one request per connection and writes ``answer``, then closes."""
    listener = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            with conn:
                conn.recv(65536)
                conn.sendall(answer)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        listener.close()


def test_a_body_framed_by_the_server_closing_is_read_whole() -> None:
    with _raw_server(b"HTTP/1.0 200 OK\r\nContent-Type: application/json\r\n\r\n" + ANSWER) as port:
        connection = KeepAliveConnection("127.0.0.1", port, 5, 5)
        status, _, body = connection.exchange(_request(port))
        connection.close()
    assert status == 200 and body == ANSWER and not connection.reusable


@pytest.mark.parametrize(
    "answer",
    [b"SSH-2.0-OpenSSH_9.6\r\n", b"HTTP/1.1 200 OK\r\nContent-Length: 99\r\n\r\n{}", b""],
    ids=["not-http", "short-body", "nothing"],
)
def test_a_server_that_does_not_speak_http_is_a_transient_connection_error(
    answer: bytes,
) -> None:
    with _raw_server(answer) as port, pytest.raises(ConnectionError) as failed:
        _query(_client(port))
    assert is_transient(failed.value)


def test_a_readers_batches_reuse_its_threads_connections() -> None:
    # Each batch reads two receipts at once, on two of the reader's threads; threads
    # kept for the process keep their connections, so batches after the first
    # connect no more (threads made per batch connected twice per batch).
    with _serving() as (port, handler):
        reader = TableReader(_aws(port), "t")
        scopes = {("a", 1): WHOLE_RECEIPT, ("b", 2): WHOLE_RECEIPT}
        try:
            for _ in range(4):
                reader.read(scopes)
        finally:
            reader.close()
    assert len(handler.seen) == 8
    assert len({p for p, _ in handler.seen}) <= 2
