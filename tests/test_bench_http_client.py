"""The load generator's HTTP client against a keep-alive server on loopback:
it reuses a connection while the server keeps it, and does not send on one
that has sat idle near the server's keep-alive timeout (a request sent as the
server closes its end is reset, and the bench counted it as a failure)."""

import asyncio

from bench.http_client import HttpClient

ANSWER = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Type: application/json\r\n\r\n{}"


async def _server(keepalive: float) -> tuple[asyncio.Server, list[int]]:
    """Answers every request; closes a connection idle for `keepalive` seconds.
    The list counts connections accepted."""
    accepted = [0]

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted[0] += 1
        try:
            while True:
                head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), keepalive)
                length = next(
                    int(line.split(b":", 1)[1])
                    for line in head.lower().split(b"\r\n")
                    if line.startswith(b"content-length:")
                )
                await reader.readexactly(length)
                writer.write(ANSWER)
        except (TimeoutError, asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    return server, accepted


async def test_a_connection_idle_near_the_servers_keepalive_is_not_reused():
    server, accepted = await _server(keepalive=0.6)
    port = server.sockets[0].getsockname()[1]
    client = HttpClient(f"http://127.0.0.1:{port}", timeout=2.0, keepalive_expiry=0.3)
    try:
        assert await client.post("/a", b"{}", b"") == (200, b"{}")
        await asyncio.sleep(0.1)  # well within the expiry: the same connection
        assert await client.post("/a", b"{}", b"") == (200, b"{}")
        assert accepted[0] == 1
        # Past the client's expiry, still inside the server's keep-alive: the
        # server would take it, but a request racing its close would be lost.
        await asyncio.sleep(0.4)
        assert await client.post("/a", b"{}", b"") == (200, b"{}")
        assert accepted[0] == 2
    finally:
        await client.close()
        server.close()
        await server.wait_closed()
