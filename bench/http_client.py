"""The load generator's HTTP/1.1 client: keep-alive connections, one request
at a time on each, answers read by Content-Length.

Written for the bench, not taken from a library, because the load generator
shares the machine's two cores with what it measures: a general client
(aiohttp) spent about 170 µs of CPU per request here, CPU the facade, ledger
and PostgreSQL then did not get. This one does only what the facade's answers
need (no chunked bodies, no redirects, no cookies) and refuses anything else
loudly rather than misread it.
"""

from __future__ import annotations

import asyncio
import time
from typing import cast
from urllib.parse import urlsplit


class ProtocolMismatch(Exception):
    """An answer this client does not read (the load generator counts it as an error)."""


class _Connection(asyncio.Protocol):
    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.answer: asyncio.Future[tuple[int, bytes]] | None = None
        self.open = True
        self.idle_since = 0.0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        answer = self.answer
        if answer is None or answer.done():
            return
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0:
            return
        head = bytes(self.buffer[:end]).lower()
        start = head.find(b"\r\ncontent-length:")
        if start < 0:
            answer.set_exception(ProtocolMismatch(f"no Content-Length: {head[:200]!r}"))
            return
        stop = head.find(b"\r\n", start + 2)
        length = int(head[start + 17 : stop if stop > 0 else len(head)])
        if len(self.buffer) < end + 4 + length:
            return
        body = bytes(self.buffer[end + 4 : end + 4 + length])
        del self.buffer[: end + 4 + length]
        if b"\r\nconnection: close" in head:
            self.open = False
        answer.set_result((int(head[9:12]), body))

    def connection_lost(self, exc: Exception | None) -> None:
        self.open = False
        if self.answer is not None and not self.answer.done():
            self.answer.set_exception(ConnectionError(f"connection lost: {exc!r}"))


class HttpClient:
    """`keepalive_expiry`: a connection idle longer than this is closed, not
    reused. It must be shorter than the server's keep-alive (the facade's is
    5 s by default): a request sent as the server closes its end is reset."""

    def __init__(self, base_url: str, timeout: float, keepalive_expiry: float = 4.0) -> None:
        parts = urlsplit(base_url)
        if parts.scheme != "http" or parts.hostname is None:
            raise ValueError(f"an http:// URL is needed, not {base_url!r}")
        self._host = parts.hostname
        self._port = parts.port or 80
        self._prefix = parts.path.rstrip("/").encode()
        self._host_header = f"Host: {parts.netloc}\r\n".encode()
        self._timeout = timeout
        self._keepalive_expiry = keepalive_expiry
        self._idle: list[_Connection] = []

    async def post(self, path: str, body: bytes, headers: bytes) -> tuple[int, bytes]:
        """(status, body). `headers`: extra header lines, each ending in CRLF."""
        loop = asyncio.get_running_loop()
        connection = await self._connection()
        assert connection.transport is not None
        answer = connection.answer = loop.create_future()
        connection.transport.write(
            b"POST %s%s HTTP/1.1\r\n%sContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n%s\r\n%s"
            % (self._prefix, path.encode(), self._host_header, len(body), headers, body)
        )
        # A timer rather than asyncio.wait_for: no task per request.
        timer = loop.call_later(self._timeout, _expire, answer)
        try:
            result = await answer
        except BaseException:
            connection.transport.close()
            raise
        finally:
            timer.cancel()
            connection.answer = None
        if connection.open:
            connection.idle_since = time.monotonic()
            self._idle.append(connection)
        else:
            connection.transport.close()
        return result

    async def close(self) -> None:
        for connection in self._idle:
            if connection.transport is not None:
                connection.transport.close()
        self._idle.clear()

    async def _connection(self) -> _Connection:
        """The connection used last (LIFO), skipping any the server closed
        while it sat idle and closing any near the server's keep-alive
        timeout, or a new one."""
        fresh_since = time.monotonic() - self._keepalive_expiry
        while self._idle:
            connection = self._idle.pop()
            if connection.open and connection.idle_since > fresh_since:
                return connection
            if connection.transport is not None:
                connection.transport.close()
        return await self._connect()

    async def _connect(self) -> _Connection:
        loop = asyncio.get_running_loop()
        _, connection = await loop.create_connection(_Connection, self._host, self._port)
        return connection


def _expire(answer: asyncio.Future[tuple[int, bytes]]) -> None:
    if not answer.done():
        answer.set_exception(TimeoutError("no answer in time"))
