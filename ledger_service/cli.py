"""`ledger-service`: run the gRPC ledger (serve), apply or list migrations
(migrate), or print the effective settings (check-config)."""

from __future__ import annotations

import argparse
import asyncio
import sys

import asyncpg
import uvloop

from ledger_client import logs, runtime, settings_kit

from . import server
from .database import UnsafeDatabase
from .migrations import MigrationError
from .settings import Settings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="ledger-service", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the gRPC ledger service")
    settings_kit.add_flags(serve, Settings)
    serve.add_argument(
        "--no-migrate",
        dest="migrate_on_start",
        action="store_const",
        const="false",
        help="do not apply migrations first (a DML-only role; LEDGER_MIGRATE_ON_START=false)",
    )
    migrate = commands.add_parser("migrate", help="apply pending database migrations and exit")
    settings_kit.add_flags(migrate, Settings)
    migrate.add_argument("--status", action="store_true", help="list migrations, apply nothing")
    checked = commands.add_parser("check-config", help="print the effective settings and exit")
    settings_kit.add_flags(checked, Settings)
    flags = parser.parse_args(argv)
    settings = settings_kit.load_or_exit(parser, Settings, flags)
    logs.configure(settings.log_level, settings.log_format)
    if flags.command == "migrate":
        return _migrate(parser, settings, status_only=flags.status)
    runtime.tune_gc()
    try:
        # uvloop, as the facade runs under uvicorn: the ledger's loop turns
        # (gRPC completions, asyncpg replies, batch futures) cost about a
        # tenth less CPU per request than on asyncio's own loop.
        uvloop.run(server.serve(settings))
    except (ValueError, OSError) as error:  # bad TLS files, unusable address
        parser.exit(2, f"ledger-service: error: {error}\n")
    except UnsafeDatabase as error:
        parser.exit(2, f"ledger-service: refusing to serve: {error}\n")
    return 0


def _migrate(parser: argparse.ArgumentParser, settings: Settings, *, status_only: bool) -> int:
    url = server.database_url(settings)
    try:
        if status_only:
            for line in asyncio.run(server.migration_status(url)):
                print(line)
            return 0
        applied = asyncio.run(server.migrate(url, distributed=settings.distributed, wait=10))
    except (OSError, TimeoutError, asyncpg.PostgresError, MigrationError) as error:
        parser.exit(1, f"ledger-service: migrate failed: {error}\n")
    print("applied: " + ", ".join(applied) if applied else "the database is up to date")
    return 0


if __name__ == "__main__":
    sys.exit(main())
