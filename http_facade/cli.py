"""`ledger-facade`: serve TradeBoss's webhooks over HTTP with uvicorn."""

from __future__ import annotations

import argparse
import os
import signal
import sys
from typing import Any

import uvicorn

from ledger_client import logs

from . import connection_limits
from .app import create_app, ledger_client_for
from .settings import FacadeSettings, add_flags


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="ledger-facade", description=__doc__)
    add_flags(parser)
    flags = parser.parse_args(argv)
    try:
        settings = FacadeSettings.from_env().with_flags(flags)
        settings.check()
    except ValueError as error:
        parser.error(str(error))
    logs.configure(settings.log_level, settings.log_format)
    connection_limits.raise_open_files_limit()
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
        "timeout_graceful_shutdown": 10,
        "log_config": None,
    }
    # uvicorn drains connections on SIGTERM or Ctrl-C, then re-raises the signal to the
    # handler it found: make that a clean exit, as for the ledger service.
    signal.signal(signal.SIGTERM, _exit_cleanly)
    signal.signal(signal.SIGINT, _exit_cleanly)
    if settings.workers > 1:
        # Worker processes build their app from the environment.
        os.environ.update(_as_env(flags))
        uvicorn.run(
            "http_facade.app:app_from_env", factory=True, workers=settings.workers, **options
        )
    else:
        uvicorn.run(create_app(settings, ledger_client_for(settings)), **options)
    return 0


def _exit_cleanly(signum: int, frame: object) -> None:
    sys.exit(0)


def _as_env(flags: argparse.Namespace) -> dict[str, str]:
    return {
        f"FACADE_{name.upper()}": str(value)
        for name, value in vars(flags).items()
        if value is not None
    }


if __name__ == "__main__":
    sys.exit(main())
