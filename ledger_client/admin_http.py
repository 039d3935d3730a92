"""The admin listener both services run beside their public port: health,
readiness, metrics and documents for operators and probes, on an address of
its own (loopback by default), never on the public webhook or gRPC port. A
few GET routes need no framework: plain asyncio, one request per connection."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

log = logging.getLogger(__name__)

_REASONS = {200: "OK", 404: "Not Found", 405: "Method Not Allowed", 503: "Service Unavailable"}


@dataclass(frozen=True)
class Reply:
    status: int
    body: bytes
    content_type: str = "application/json"


Route = Callable[[], Awaitable[Reply]]


def json_reply(status: int, document: object) -> Reply:
    return Reply(status, json.dumps(document).encode())


async def metrics_reply() -> Reply:
    return Reply(200, generate_latest(), CONTENT_TYPE_LATEST)


class AdminListener:
    """GET routes on host:port; start() binds, close() stops."""

    def __init__(self, listen: str, routes: dict[str, Route]) -> None:
        host, _, port = listen.rpartition(":")
        self.host, self.port = host.strip("[]") or "127.0.0.1", int(port)
        self.routes = {"/metrics": metrics_reply, **routes}
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._answer, self.host, self.port)
        log.info("admin listener on %s:%s (%s)", self.host, self.port, ", ".join(self.routes))

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _answer(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout=5)
            method, _, rest = head.decode("latin-1").partition(" ")
            path = rest.partition(" ")[0].partition("?")[0]
            route = self.routes.get(path)
            if route is None:
                reply = json_reply(404, {"error": "not found"})
            elif method not in ("GET", "HEAD"):
                reply = json_reply(405, {"error": "GET only"})
            else:
                reply = await route()
            writer.write(
                f"HTTP/1.1 {reply.status} {_REASONS.get(reply.status, '')}\r\n"
                f"content-type: {reply.content_type}\r\ncontent-length: {len(reply.body)}\r\n"
                "connection: close\r\n\r\n".encode()
                + (reply.body if method != "HEAD" else b"")
            )
            await writer.drain()
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError, OSError):
            pass
        finally:
            writer.close()
