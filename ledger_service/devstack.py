"""`make run`: the whole system on this machine, in the foreground, until Ctrl-C.

Starts the ledger service (which starts the embedded PostgreSQL in .ledger/
unless LEDGER_DATABASE_URL is set) and then the HTTP facade, prints where each
listens, and stops both cleanly on Ctrl-C or SIGTERM (facade first).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from types import FrameType

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

LEDGER_LISTEN = os.environ.get("LEDGER_LISTEN", "127.0.0.1:50051")
FACADE_LISTEN = os.environ.get("FACADE_LISTEN", "127.0.0.1:8080")
# Readiness is on the facade's admin listener, never on its public port.
FACADE_ADMIN_LISTEN = os.environ.get("FACADE_ADMIN_LISTEN", "127.0.0.1:9465")


def _wait_for_ledger(process: subprocess.Popen[bytes], within: float = 60.0) -> None:
    give_up_at = time.monotonic() + within
    with grpc.insecure_channel(LEDGER_LISTEN) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        while time.monotonic() < give_up_at:
            if process.poll() is not None:
                raise SystemExit(f"the ledger service exited with status {process.returncode}")
            try:
                answer = health.Check(health_pb2.HealthCheckRequest(), timeout=1)
                if answer.status == health_pb2.HealthCheckResponse.SERVING:
                    return
            except grpc.RpcError:
                time.sleep(0.2)
    raise SystemExit(f"the ledger service did not become ready within {within:.0f}s")


def _wait_for_facade(process: subprocess.Popen[bytes], within: float = 30.0) -> None:
    give_up_at = time.monotonic() + within
    while time.monotonic() < give_up_at:
        if process.poll() is not None:
            raise SystemExit(f"the facade exited with status {process.returncode}")
        try:
            with urllib.request.urlopen(f"http://{FACADE_ADMIN_LISTEN}/readyz", timeout=1):
                return
        except OSError:
            time.sleep(0.2)
    raise SystemExit(f"the facade did not become ready within {within:.0f}s")


def main() -> int:
    children: list[subprocess.Popen[bytes]] = []

    def stop(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    try:
        ledger = subprocess.Popen(
            [sys.executable, "-m", "ledger_service", "serve", "--listen", LEDGER_LISTEN]
        )
        children.append(ledger)
        _wait_for_ledger(ledger)
        facade = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "http_facade.cli",
                "--listen",
                FACADE_LISTEN,
                "--ledger-target",
                LEDGER_LISTEN,
            ]
        )
        children.append(facade)
        _wait_for_facade(facade)
        database = os.environ.get("LEDGER_DATABASE_URL") or "embedded, data in .ledger/pgdata"
        ledger_admin = os.environ.get("LEDGER_ADMIN_LISTEN", "127.0.0.1:9464")
        print(f"\n  PostgreSQL      {database}")
        print(
            f"  ledger gRPC     {LEDGER_LISTEN}   admin http://{ledger_admin} (/readyz, /metrics)"
        )
        print(f"  facade HTTP     http://{FACADE_LISTEN}   (the three webhooks)")
        print(f"  facade admin    http://{FACADE_ADMIN_LISTEN} (/readyz, /metrics, /openapi.json)")
        print("  operator CLI    .venv/bin/ledger --help")
        print("\n  Ctrl-C stops everything.\n", flush=True)
        while all(child.poll() is None for child in children):
            time.sleep(0.5)
        # A child stopped first: cleanly when Ctrl-C reached it before us.
        failed = [child for child in children if child.returncode not in (None, 0)]
        for child in failed:
            print(f"{child.args!r} exited with status {child.returncode}", flush=True)
        return 1 if failed else 0
    except KeyboardInterrupt:
        return 0
    finally:
        # The facade first, so nothing reaches a ledger that is stopping.
        for child in reversed(children):
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
            try:
                child.wait(timeout=20)
            except subprocess.TimeoutExpired:
                child.kill()
        print("stopped.", flush=True)


if __name__ == "__main__":
    sys.exit(main())
