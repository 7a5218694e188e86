"""One keep-alive HTTP/1.1 connection: a request out in one write, its response read back.

Why not ``http.client``: the worker's table reads are small requests to one host,
and ``http.client`` spends most of a call's client CPU around the socket rather
than in it: a write per header block and body, then the response's headers run
through the ``email`` package's parser. Over loopback to dynalite (keep-alive)
a signed Query cost 230 µs of CPU through ``http.client`` against 42 µs for the
same bytes sent and read on a bare socket (BENCHMARKS.md, "CPU per embedding").
This class reads just what a DynamoDB answer needs: the status line, header
names and values, and a body framed by ``Content-Length``, chunked, or (HTTP/1.0
style) by the server closing the connection.

Errors: a server that closes the connection, answers with something that is not
HTTP, or resets it, raises :class:`ConnectionError` (the caller opens a fresh one
and tries again); a server that does not answer in time raises
:class:`TimeoutError`; both are what :func:`tasks.errors.is_transient` retries.
"""

from __future__ import annotations

import socket
import ssl
from typing import Final

#: Longest status or header line accepted (as ``http.client``'s limit).
MAX_LINE: Final = 65536
#: Most header lines accepted in one response.
MAX_HEADERS: Final = 100


class KeepAliveConnection:
    """A TCP (or TLS) connection to ``host:port``, used by one thread at a time."""

    def __init__(
        self,
        host: str,
        port: int,
        connect_timeout: float,
        read_timeout: float,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        sock = socket.create_connection((host, port), timeout=connect_timeout)
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if tls is not None:
                sock = tls.wrap_socket(sock, server_hostname=host)
            sock.settimeout(read_timeout)
        except BaseException:
            sock.close()
            raise
        self._sock = sock
        self._reader = sock.makefile("rb")
        #: False once the server said it closes the connection after this answer.
        self.reusable = True

    def exchange(self, request: bytes) -> tuple[int, dict[str, str], bytes]:
        """Send a whole request (head and body); return status, headers (lower-case
        names) and body of its response."""
        self._sock.sendall(request)
        version, status = self._status()
        headers = self._headers()
        body = self._body(headers)
        kept = headers.get("connection", "").lower()
        if kept == "close" or (version == b"HTTP/1.0" and kept != "keep-alive"):
            self.reusable = False
        return status, headers, body

    def close(self) -> None:
        self.reusable = False
        try:
            self._reader.close()
        finally:
            self._sock.close()

    # -- reading the response -----------------------------------------------------------

    def _line(self) -> bytes:
        line = self._reader.readline(MAX_LINE + 1)
        if not line:
            raise ConnectionResetError("the server closed the connection before answering")
        if len(line) > MAX_LINE:
            raise ConnectionError("a response line longer than 64 KiB")
        return line

    def _status(self) -> tuple[bytes, int]:
        """The response's HTTP version and status code."""
        line = self._line()
        version, _, rest = line.partition(b" ")
        code = rest[:3]
        if not version.startswith(b"HTTP/") or not code.isdigit():
            raise ConnectionError(f"not an HTTP response: {line[:80]!r}")
        return version, int(code)

    def _headers(self) -> dict[str, str]:
        headers: dict[str, str] = {}
        for _ in range(MAX_HEADERS + 1):
            line = self._line()
            if line in (b"\r\n", b"\n"):
                return headers
            name, _, value = line.partition(b":")
            headers[name.strip().lower().decode("latin-1")] = value.strip().decode("latin-1")
        raise ConnectionError(f"a response with more than {MAX_HEADERS} headers")

    def _exactly(self, size: int) -> bytes:
        data = self._reader.read(size)
        if len(data) < size:
            raise ConnectionResetError(
                f"the server closed the connection {size - len(data)} bytes short"
            )
        return data

    def _body(self, headers: dict[str, str]) -> bytes:
        length = headers.get("content-length")
        if length is not None:
            if not length.isdigit():
                raise ConnectionError(f"a malformed Content-Length: {length[:40]!r}")
            return self._exactly(int(length))
        if "chunked" in headers.get("transfer-encoding", "").lower():
            chunks: list[bytes] = []
            while True:
                size_line = self._line().split(b";", 1)[0].strip()
                try:
                    size = int(size_line, 16)
                except ValueError:
                    raise ConnectionError(f"a malformed chunk size: {size_line[:40]!r}") from None
                if size == 0:
                    while self._line() not in (b"\r\n", b"\n"):  # trailers
                        pass
                    return b"".join(chunks)
                chunks.append(self._exactly(size))
                self._line()  # the CRLF after the chunk
        self.reusable = False  # framed by the server closing the connection
        return self._reader.read()
