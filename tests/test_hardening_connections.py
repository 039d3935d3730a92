"""One hostile connection cannot stop the facade (hardening, findings 1 and 2):
an endless header, a slow sender and a flood of idle connections each cost
their own connections while another client's calls are still answered.
Loopback only, bounded in time; the bounds are correctness bounds (TradeBoss
waits 3 s), not benchmarks."""

from __future__ import annotations

import asyncio
import re
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx

from .conftest import FacadeProcess
from .tradeboss import TradeBoss


@dataclass(kw_only=True)
class FacadeWithFewFiles(FacadeProcess):
    """A facade allowed only 256 open files, as a tight systemd unit would."""

    def command(self) -> list[str]:
        return ["prlimit", "--nofile=256:256", *super().command()]


async def _started(facade_factory, cls: type[FacadeProcess] = FacadeProcess, **settings: str):
    made = facade_factory(**settings)
    facade = (
        made
        if cls is FacadeProcess
        else cls(env=made.env, log_path=made.log_path, url=made.url, admin_url=made.admin_url)
    )
    facade.start()
    await facade.wait_ready()
    return facade


async def _answered_meanwhile(
    facade: FacadeProcess, wallet, start_attack: Callable[[], Any]
) -> tuple[list[float], asyncio.Task]:
    """Another client's balance queries while the attack runs: each one's time.
    The client's connection is open before the attack starts (a flood that
    fills the connection cap first would refuse it, as designed)."""
    times = []
    async with httpx.AsyncClient() as client:
        tradeboss = TradeBoss(facade.url, client)
        assert (await tradeboss.query(wallet))["code"] == "0"
        attack = asyncio.create_task(asyncio.to_thread(start_attack))
        while not attack.done() and len(times) < 50:
            started = time.perf_counter()
            answer = await tradeboss.query(wallet)
            assert answer["code"] == "0"
            times.append(time.perf_counter() - started)
            await asyncio.sleep(0.05)
    return times, attack


def _refused(facade: FacadeProcess, reason: str) -> float:
    text = httpx.get(facade.admin_url + "/metrics").text
    found = re.search(rf'facade_connections_refused_total{{reason="{reason}"}} ([0-9.]+)', text)
    return float(found.group(1)) if found else 0.0


def _open(facade: FacadeProcess) -> socket.socket:
    host, port = facade.url.removeprefix("http://").split(":")
    return socket.create_connection((host, int(port)), timeout=5)


async def test_an_endless_header_costs_one_connection(facade_factory, open_wallet):
    wallet = await open_wallet(balance="1.00")
    facade = await _started(facade_factory, header_timeout="30")

    def endless_header() -> bytes:
        """Sends one header without end, as fast as it can, for at most 20 s."""
        attacker = _open(facade)
        attacker.sendall(b"POST /get-user-amount HTTP/1.1\r\nHost: x\r\nX-Big: ")
        chunk = b"a" * 65536
        give_up = time.monotonic() + 20
        try:
            while time.monotonic() < give_up:
                attacker.sendall(chunk)
        except OSError:  # the facade closed it
            pass
        try:
            return attacker.recv(200)
        except OSError:
            return b""
        finally:
            attacker.close()

    try:
        times, attack = await _answered_meanwhile(facade, wallet, endless_header)
        answer = await attack
        assert answer.startswith(b"HTTP/1.1 431") or answer == b""
        assert times and max(times) < 1.0, times
        assert _refused(facade, "header_too_large") >= 1
    finally:
        facade.terminate()


async def test_a_slow_sender_is_cut_off_and_others_are_served(facade_factory, open_wallet):
    wallet = await open_wallet(balance="1.00")
    facade = await _started(facade_factory, header_timeout="1")

    def slowloris() -> tuple[float, bytes]:
        """One byte of headers every 0.2 s; how long until the facade hangs up."""
        attacker = _open(facade)
        started = time.monotonic()
        request = b"POST /get-user-amount HTTP/1.1\r\nHost: x\r\n" + b"X-Slow: " + b"s" * 200
        try:
            for byte in request:
                attacker.sendall(bytes([byte]))
                time.sleep(0.2)
                if time.monotonic() - started > 15:
                    break
            return time.monotonic() - started, attacker.recv(200)
        except OSError:
            return time.monotonic() - started, b""
        finally:
            attacker.close()

    try:
        times, attack = await _answered_meanwhile(facade, wallet, slowloris)
        lasted, answer = await attack
        assert lasted < 10, "the slow sender was never cut off"
        assert answer.startswith(b"HTTP/1.1 408") or answer == b""
        assert times and max(times) < 1.0, times
        assert _refused(facade, "header_timeout") >= 1
    finally:
        facade.terminate()


async def test_a_flood_of_idle_connections_is_closed_and_real_calls_still_answered(
    facade_factory, open_wallet
):
    """Finding 2: 1,100 idle connections against a low descriptor limit reset
    every real request. Now idle connections are closed by timeout, the
    number open is capped, and what is refused is counted."""
    wallet = await open_wallet(balance="1.00")
    facade = await _started(
        facade_factory, FacadeWithFewFiles, header_timeout="1", max_connections="150"
    )

    def flood() -> int:
        held = []
        try:
            for _ in range(400):
                try:
                    held.append(_open(facade))
                except OSError:
                    time.sleep(0.01)
            time.sleep(3)  # longer than the header timeout
            closed = 0
            for connection in held:
                connection.settimeout(0.5)
                try:
                    closed += connection.recv(10) == b""
                except OSError:
                    closed += 1
            return closed
        finally:
            for connection in held:
                connection.close()

    try:
        times, attack = await _answered_meanwhile(facade, wallet, flood)
        closed = await attack
        assert closed >= 390, f"only {closed} of the idle connections were closed"
        assert times and max(times) < 1.0, times
        assert _refused(facade, "too_many_connections") + _refused(facade, "idle") >= 250
        # After the flood, everything works as before.
        async with httpx.AsyncClient() as client:
            assert (await TradeBoss(facade.url, client).query(wallet))["code"] == "0"
    finally:
        facade.terminate()


async def test_the_header_limit_counts_headers_not_the_body_after_them(facade):
    """Headers and a large body in one packet: the body is not counted as
    header bytes (the body limit answers instead, in the envelope)."""
    body = b'{"x": "' + b"a" * 20000 + b'"}'
    head = (
        "POST /get-user-amount HTTP/1.1\r\nHost: x\r\ntrace: one-packet\r\ncompanyId: 1\r\n"
        f"content-type: application/json\r\ncontent-length: {len(body)}\r\n"
        "connection: close\r\n\r\n"
    ).encode()

    def send_at_once() -> bytes:
        with _open(facade) as sock:
            sock.sendall(head + body)
            answer = b""
            while chunk := sock.recv(65536):
                answer += chunk
            return answer

    answer = await asyncio.to_thread(send_at_once)
    assert answer.startswith(b"HTTP/1.1 200"), answer[:200]
    assert b'"code":"LW_1008"' in answer
