"""`ledger-service`: run the gRPC ledger (serve) or apply migrations (migrate)."""

from __future__ import annotations

import argparse
import asyncio
import sys

from ledger_client import logs

from . import server
from .database import UnsafeDatabase
from .settings import Settings, add_flags


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="ledger-service", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the gRPC ledger service")
    add_flags(serve)
    migrate = commands.add_parser("migrate", help="apply pending database migrations and exit")
    add_flags(migrate)
    flags = parser.parse_args(argv)
    try:
        settings = Settings.from_env().with_flags(flags)
    except ValueError as error:
        parser.error(str(error))
    logs.configure(settings.log_level, settings.log_format)
    if flags.command == "migrate":
        applied = asyncio.run(server.migrate(server.database_url(settings)))
        print("applied: " + ", ".join(applied) if applied else "the database is up to date")
        return 0
    try:
        asyncio.run(server.serve(settings))
    except (ValueError, OSError) as error:  # bad TLS files, unusable address
        parser.exit(2, f"ledger-service: error: {error}\n")
    except UnsafeDatabase as error:
        parser.exit(2, f"ledger-service: refusing to serve: {error}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
