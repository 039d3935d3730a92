"""Limits on each HTTP connection, enforced before the application sees it.

uvicorn's httptools parser puts no bound on a header block: one connection
sending an endless header kept the facade at 100% CPU and growing. This is
uvicorn's own httptools protocol with four limits added: header block size,
header count, time to send a request's headers, and open connections. A slow
or endless sender costs one connection, never the process. (The design's
measurements: uvicorn+httptools answers 2.3x what uvicorn+h11 does, so the
fast parser stays and gets the limits h11 would have had.)
"""

from __future__ import annotations

import asyncio
import errno
import logging
import resource
from dataclasses import dataclass
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from . import metrics
from .settings import FacadeSettings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ConnectionLimits:
    max_header_bytes: int = 16384  # request line and headers
    max_headers: int = 100
    header_timeout: float = 5.0  # seconds to send a request's headers
    max_connections: int = 1000


class LimitedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's `http` protocol, with `limits` (a module-level class, so that
    uvicorn's worker processes find it by name and read their settings)."""

    limits = ConnectionLimits()
    _header_bytes = 0
    _header_count = 0
    _reading_headers = True
    _header_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if len(self.connections) > self.limits.max_connections:
            metrics.CONNECTIONS_REFUSED.labels("too_many_connections").inc()
            log.warning("refused a connection: %s open", len(self.connections) - 1)
            transport.close()
            return
        self._expect_headers()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_header_timer()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        # A chunk may hold the end of the headers and the body after them: the
        # limit applies only while the headers are still incomplete once the
        # parser has seen the chunk (it holds at most one chunk past the limit).
        reading = self._reading_headers
        if reading:
            self._header_bytes += len(data)
        super().data_received(data)
        if (
            reading
            and self._reading_headers
            and self._header_bytes > self.limits.max_header_bytes
            and not self.transport.is_closing()
        ):
            self._refuse("header_too_large", 431, "Request header block too large")

    def on_header(self, name: bytes, value: bytes) -> None:
        self._header_count += 1
        if self._header_count > self.limits.max_headers:
            self._refuse("too_many_headers", 431, "Too many request headers")
            return
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._reading_headers = False
        self._stop_header_timer()
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._expect_headers()  # the next request on this connection

    def _expect_headers(self) -> None:
        self._reading_headers = True
        self._header_bytes = 0
        self._header_count = 0
        self._stop_header_timer()
        self._header_timer = self.loop.call_later(self.limits.header_timeout, self._headers_late)

    def _stop_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _headers_late(self) -> None:
        self._header_timer = None
        if self.cycle is not None and not self.cycle.response_complete:
            # A request in flight: look again once it has been answered.
            self._header_timer = self.loop.call_later(
                self.limits.header_timeout, self._headers_late
            )
            return
        if self._header_bytes:
            self._refuse("header_timeout", 408, "Request headers not received in time")
        elif not self.transport.is_closing():
            metrics.CONNECTIONS_REFUSED.labels("idle").inc()
            self.transport.close()  # an idle connection that never spoke

    def _refuse(self, reason: str, status: int, message: str) -> None:
        metrics.CONNECTIONS_REFUSED.labels(reason).inc()
        log.warning("closed a connection from %s: %s", self.client, message)
        if self.transport.is_closing():
            return
        body = message.encode()
        self.transport.write(
            b"HTTP/1.1 %d %s\r\ncontent-type: text/plain\r\ncontent-length: %d\r\n"
            b"connection: close\r\n\r\n%s" % (status, message.encode(), len(body), body)
        )
        self.transport.close()


def configure(settings: FacadeSettings) -> type[asyncio.Protocol]:
    """Set the limits from the settings; return the protocol class for uvicorn."""
    LimitedHttpToolsProtocol.limits = ConnectionLimits(
        max_header_bytes=settings.max_header_bytes,
        max_headers=settings.max_headers,
        header_timeout=settings.header_timeout,
        max_connections=settings.max_connections,
    )
    return LimitedHttpToolsProtocol


def raise_open_files_limit() -> int:
    """Raise the soft limit on open files to the hard one; return it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
        except (ValueError, OSError) as error:
            log.warning("cannot raise the open files limit from %s: %s", soft, error)
    return soft


def watch_for_exhaustion(loop: asyncio.AbstractEventLoop) -> None:
    """Running out of file descriptors shows in the log and a metric, not in silence."""
    previous = loop.get_exception_handler()

    def handle(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        error = context.get("exception")
        if isinstance(error, OSError) and error.errno in (errno.EMFILE, errno.ENFILE):
            metrics.CONNECTIONS_REFUSED.labels("out_of_file_descriptors").inc()
            log.error("out of file descriptors: %s", error)
            return
        if previous is not None:
            previous(loop, context)
        else:
            loop.default_exception_handler(context)

    loop.set_exception_handler(handle)
