"""The input's first bytes, buffered so its shape is told before anything is a record."""

from __future__ import annotations

from typing import IO

#: Bytes asked of the input per read (sniffing, and the JSON parser's buffer).
READ_BYTES = 64 * 1024
#: Longest first line (and second) read whole to tell NDJSON from a document: more than
#: a stream record takes (DynamoDB items are at most 400 KB, a record holds two images).
MAX_SNIFF_LINE = 4 * 1024 * 1024
_BLANK = b" \t\r\n"
_BOM = b"\xef\xbb\xbf"


class Sniffer:
    """Reads the input's first bytes into a buffer, as far as telling its shape needs."""

    def __init__(self, stream: IO[bytes]) -> None:
        self.stream = stream
        self._read = getattr(stream, "read1", None) or stream.read
        self.buf = bytearray()
        self.eof = False
        #: Bytes and lines of leading blank space dropped before ``buf``.
        self.skipped_bytes = 0
        self.skipped_lines = 0

    def more(self) -> bool:
        if self.eof:
            return False
        chunk = self._read(READ_BYTES)
        if not chunk:
            self.eof = True
            return False
        self.buf += chunk
        return True

    def first_content(self) -> int | None:
        """The first byte after blank space (and a UTF-8 BOM), or None for a blank input."""
        while len(self.buf) < len(_BOM) and self.more():
            pass
        if self.buf.startswith(_BOM):
            del self.buf[: len(_BOM)]
            self.skipped_bytes += len(_BOM)
        while True:
            stripped = self.buf.lstrip(_BLANK)
            dropped = len(self.buf) - len(stripped)
            self.skipped_lines += self.buf.count(b"\n", 0, dropped)
            self.skipped_bytes += dropped
            del self.buf[:dropped]
            if self.buf:
                return self.buf[0]
            if not self.more():
                return None

    def line_end(self, start: int) -> int | None:
        """Where the line starting at ``start`` ends (its newline, or the input's end).

        None when it is longer than :data:`MAX_SNIFF_LINE`.
        """
        while True:
            end = self.buf.find(b"\n", start)
            if end >= 0:
                return end
            if len(self.buf) - start > MAX_SNIFF_LINE:
                return None
            if not self.more():
                return len(self.buf)

    def head(self, size: int) -> bytes:
        """The first ``size`` bytes (fewer if the input is shorter), read now if need be."""
        while len(self.buf) < size and self.more():
            pass
        return bytes(self.buf[:size])
