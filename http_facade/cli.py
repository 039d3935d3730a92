"""`ledger-facade`: serve TradeBoss's webhooks over HTTP with uvicorn
(`ledger-facade check-config` prints the effective settings instead)."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from types import FrameType
from typing import Any

import uvicorn
from starlette.applications import Starlette

from ledger_client import logs, runtime, settings_kit, tracing

from . import connection_limits
from .app import create_app, ledger_client_for
from .settings import FacadeSettings


class DrainingServer(uvicorn.Server):
    """On SIGTERM, readiness answers 503 for the pre-stop delay (the load
    balancer stops sending), then uvicorn drains for the shutdown grace."""

    def __init__(self, config: uvicorn.Config, app: Starlette, delay: float) -> None:
        super().__init__(config)
        self.app, self.delay = app, delay

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if self.app.state.draining or self.delay <= 0:
            super().handle_exit(sig, frame)
            return
        self.app.state.draining = True
        timer = threading.Timer(self.delay, super().handle_exit, (sig, frame))
        timer.daemon = True
        timer.start()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="ledger-facade", description=__doc__)
    parser.add_argument("command", nargs="?", choices=["serve", "check-config"], default="serve")
    settings_kit.add_flags(parser, FacadeSettings)
    flags = parser.parse_args(argv)
    settings = settings_kit.load_or_exit(parser, FacadeSettings, flags)
    logs.configure(settings.log_level, settings.log_format)
    connection_limits.raise_open_files_limit()
    if tracing.wanted():
        tracing.setup("ledger-facade")
    app = create_app(settings, ledger_client_for(settings))
    options: dict[str, Any] = {
        "http": connection_limits.configure(settings),
        "timeout_keep_alive": settings.keepalive_timeout,
        "host": settings.host,
        "port": settings.port,
        "log_level": settings.log_level.lower(),
        "access_log": False,  # the facade logs one structured line per call itself
        # X-Forwarded-For is judged by the facade's own trusted-proxy setting;
        # uvicorn would otherwise believe it from any loopback peer.
        "proxy_headers": False,
        "ssl_certfile": str(settings.tls_cert) if settings.tls_cert else None,
        "ssl_keyfile": str(settings.tls_key) if settings.tls_key else None,
        "timeout_graceful_shutdown": settings.shutdown_grace,
        "log_config": None,
    }
    # uvicorn drains connections on SIGTERM or Ctrl-C, then re-raises the signal to the
    # handler it found: make that a clean exit, as for the ledger service.
    signal.signal(signal.SIGTERM, _exit_cleanly)
    signal.signal(signal.SIGINT, _exit_cleanly)
    server = DrainingServer(
        uvicorn.Config(tracing.asgi(app), **options), app, settings.prestop_delay
    )
    runtime.tune_gc()
    server.run()
    return 0


def _exit_cleanly(signum: int, frame: object) -> None:
    sys.exit(0)


if __name__ == "__main__":
    sys.exit(main())
